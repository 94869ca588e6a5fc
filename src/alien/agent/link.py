"""``ManagerLink``: the agent's one connection to the manager, kept up for as long as it runs.

It dials out (never listens), says ``hello``, and from the ``welcome`` on mirrors the deployment's
status as the manager stores it (``mirror``). Pushed ``desired_release`` messages update the
mirror and are remembered (``offers``: where to download each release). The convergence worker
reads the mirror, and reports what it does through :meth:`report`, which applies the event to the
mirror with the protocol's state machine first, so an out-of-order report is never even sent.

When the connection drops the mirror is forgotten (``None``: "we do not know what the manager
thinks") and the link reconnects with jittered exponential backoff; the next ``welcome`` is the
fresh truth. Nothing is queued while disconnected: every lifecycle step is re-derived from the
manager's record on reconnect (``decide`` resumes in-flight work), so a report lost in a dropped
connection is simply made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from alien.agent.channel import (
    Channel,
    DeploymentGone,
    PollChannel,
    WebSocketChannel,
    WebSocketUnavailable,
    refused_agent,
)
from alien.agent.config import AGENT_VERSION, AgentConfig
from alien.agent.packages import ReleaseInfo
from alien.client.aio import AsyncManagerClient
from alien.client.errors import ManagerUnreachable
from alien.errors import AlienError, Forbidden, Unauthenticated
from alien.platforms.local.backoff import Backoff
from alien.protocol.agent_channel import (
    AgentMessage,
    ChannelError,
    DesiredRelease,
    Heartbeat,
    Hello,
    ManagerMessage,
    StatusReport,
    Welcome,
)
from alien.protocol.deployment import (
    DeploymentEvent,
    DeploymentStatus,
    DesiredReleaseSet,
    apply,
)
from alien.protocol.errors import IllegalTransition

log = logging.getLogger("alien.agent")

#: A connection that stayed up this long resets the reconnect backoff.
STABLE_AFTER = 30.0


#: Seconds between two checks of what the agent can do (see :meth:`ManagerLink._changes`).
CAPABILITIES_CHECK = 2.0


class CapabilitiesChanged(Exception):
    """What the agent can do changed while connected: the connection ends, a new one says so."""

    def __init__(self, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        gained = sorted(set(after) - set(before))
        lost = sorted(set(before) - set(after))
        super().__init__(
            "capabilities changed"
            + (f", now also {', '.join(gained)}" if gained else "")
            + (f", no longer {', '.join(lost)}" if lost else "")
        )


class ManagerLink:
    def __init__(
        self,
        client: AsyncManagerClient,
        token: str,
        config: AgentConfig,
        *,
        current_release: Callable[[], str | None],
        capabilities: Callable[[], tuple[str, ...]] = tuple,
        instance: str | None = None,
    ) -> None:
        """``capabilities`` says what this agent can do *now*: it is asked at every connection's
        ``hello`` and every few seconds while connected, and a change (the customer added or
        removed ``debug.json``) reconnects, so the manager learns it without a restart."""
        self.client = client
        self.token = token
        self.instance = instance
        """This agent process's id (``Alien-Agent-Instance``); the client sends it too."""
        self.config = config
        self.current_release = current_release
        self.mirror: DeploymentStatus | None = None
        self.offers: dict[str, ReleaseInfo] = {}
        self.changed = asyncio.Event()
        self.welcome: Welcome | None = None
        self.transport: str | None = None
        self.last_problem: str | None = None
        self.connected_at: datetime | None = None
        self.capabilities = capabilities
        self.capabilities_check = CAPABILITIES_CHECK
        self.on_connection_change: list[Callable[[], None]] = []
        self.on_other_message: list[Callable[[ManagerMessage], None]] = []
        """Called with every message the link does not handle itself (e.g. ``command`` offers,
        sent only to an agent listing the matching capability); answer through :meth:`send`."""
        self._channel: Channel | None = None
        self._heartbeat = config.heartbeat_default
        self._websocket_after = 0.0

    @property
    def connected(self) -> bool:
        return self._channel is not None and self.mirror is not None

    # --- what the worker uses ----------------------------------------------------------------

    async def report(self, event: DeploymentEvent) -> bool:
        """Apply ``event`` to the mirror and send it; ``False`` if not connected or refused."""
        if self.mirror is None or self._channel is None:
            log.info("not connected: %s will be re-derived after reconnecting", event.name)
            return False
        try:
            updated = apply(self.mirror, event)
        except IllegalTransition as exc:
            log.info("not reporting %s: %s", event.name, exc.message)
            return False
        self.mirror = updated
        return await self.send(StatusReport(event=event))

    async def send(self, message: AgentMessage) -> bool:
        channel = self._channel
        if channel is None:
            return False
        try:
            await channel.send(message)
        except AlienError as exc:
            log.info("could not send %s: %s", message.type, exc.message)
            return False
        return True

    # --- the connection loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = Backoff(
            base=self.config.reconnect_base,
            cap=self.config.reconnect_max,
            stable_after=STABLE_AFTER,
        )
        while True:
            started = time.monotonic()
            planned = False
            try:
                channel, limit = await self._open()
                planned = await self._session(channel, limit)
                self.last_problem = None
            except DeploymentGone as exc:
                self._problem(logging.ERROR, f"{exc.message}; run alien-deploy down to remove it")
            except (Unauthenticated, Forbidden) as exc:
                self._problem(logging.ERROR, f"the manager refused this agent's token: {exc}")
            except AlienError as exc:
                level = logging.ERROR if refused_agent(exc) else logging.WARNING
                self._problem(level, f"{exc.message}")
            except Exception as exc:  # a bug must not end the agent: its functions keep serving
                log.exception("the connection to the manager failed unexpectedly")
                self.last_problem = f"internal error: {type(exc).__name__}"
            if planned:
                backoff.reset()
                continue
            delay = backoff.next_delay(time.monotonic() - started)
            log.info("reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    def _problem(self, level: int, message: str) -> None:
        self.last_problem = message
        log.log(level, "%s", message)

    async def _open(self) -> tuple[Channel, float | None]:
        """A channel, and how long to keep it (a poll fallback retries the WebSocket later)."""
        mode = self.config.transport
        now = time.monotonic()
        if mode == "poll":
            return self._poll(), None
        if mode == "auto" and now < self._websocket_after:
            return self._poll(), self._websocket_after - now
        try:
            return (
                await WebSocketChannel.open(
                    self.client.config.base_url,
                    self.token,
                    instance=self.instance,
                    timeout=self.config.open_timeout,
                ),
                None,
            )
        except WebSocketUnavailable as exc:
            if mode == "websocket":
                raise
            retry = self.config.websocket_retry
            log.warning("%s; using HTTPS long-polling (WebSocket retried in %gs)", exc, retry)
            self._websocket_after = now + retry
            return self._poll(), retry

    def _poll(self) -> PollChannel:
        return PollChannel(
            self.client, wait=self.config.poll_wait, capabilities=self.capabilities()
        )

    async def _session(self, channel: Channel, limit: float | None) -> bool:
        """Run one connection until it fails (raises), or ``limit`` runs out or the agent's
        capabilities change (returns True: a planned reconnect)."""
        announced = self.capabilities()
        planned = False
        try:
            async with asyncio.timeout(limit) as scope:
                await channel.send(
                    Hello(
                        agent_version=AGENT_VERSION,
                        platform="local",
                        current_release=self.current_release(),
                        capabilities=announced,
                    )
                )
                await _first_failure(
                    self._receive(channel), self._beat(channel), self._changes(announced)
                )
        except CapabilitiesChanged as changed:
            log.info("%s: reconnecting to tell the manager", changed)
            planned = True
            return True
        except TimeoutError:
            if scope.expired():
                planned = True
                return True
            raise ManagerUnreachable("the manager stopped answering", field="manager") from None
        finally:
            self._disconnected(planned)
            with contextlib.suppress(Exception):
                await channel.aclose()
        return False

    async def _receive(self, channel: Channel) -> None:
        while True:
            try:
                message = await channel.receive()
            except AlienError as exc:
                if exc.code in {"UNKNOWN_MESSAGE_TYPE"}:
                    log.info("ignoring a message this agent does not understand: %s", exc)
                    continue
                raise
            self._on_message(channel, message)

    async def _changes(self, announced: tuple[str, ...]) -> None:
        """Raise :class:`CapabilitiesChanged` once what the agent can do is not what it
        announced (a ``stat`` every few seconds: the check is a file's existence)."""
        while True:
            await asyncio.sleep(self.capabilities_check)
            now = self.capabilities()
            if now != announced:
                raise CapabilitiesChanged(announced, now)

    async def _beat(self, channel: Channel) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if self._channel is channel:
                await channel.send(Heartbeat(sent_at=datetime.now(UTC)))

    def _on_message(self, channel: Channel, message: ManagerMessage) -> None:
        if isinstance(message, Welcome):
            first = self._channel is None
            self.welcome = message
            self.mirror = message.status
            self._heartbeat = message.heartbeat_interval
            self._channel = channel
            self.transport = channel.name
            self.connected_at = datetime.now(UTC)
            if first:
                self._notify()
                log.info(
                    "connected to the manager (%s): %s is %s",
                    channel.name,
                    f"{message.group}/{message.deployment_name}",
                    message.status.state.value,
                )
        elif isinstance(message, DesiredRelease):
            if message.release_id not in self.offers:
                log.info("release %s is desired", message.release_id)
            self.offers[message.release_id] = ReleaseInfo.from_message(message)
            if self.mirror is not None and self.mirror.desired_release != message.release_id:
                with contextlib.suppress(IllegalTransition):
                    self.mirror = apply(self.mirror, DesiredReleaseSet(release=message.release_id))
        elif isinstance(message, ChannelError):
            log.warning("the manager refused a message: %s (%s)", message.message, message.code)
            if message.status is not None:
                self.mirror = message.status
        else:
            for handler in self.on_other_message:
                handler(message)
            return
        self.changed.set()

    def _disconnected(self, planned: bool) -> None:
        was = self._channel is not None
        self._channel = None
        self.mirror = None
        self.transport = None
        self.connected_at = None
        if was:
            log.log(
                logging.INFO if planned else logging.WARNING,
                "disconnected from the manager%s",
                " (on purpose, to connect again at once)" if planned else "",
            )
            self._notify()
        self.changed.set()

    def _notify(self) -> None:
        for callback in self.on_connection_change:
            callback()


async def _first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` together until one of them raises; cancel the rest, re-raise that error."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
