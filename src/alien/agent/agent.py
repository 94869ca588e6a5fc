"""``Agent``: the pull-model agent process, ``alien-deploy up`` / ``run`` in the foreground.

Started on a state directory that holds an onboarded deployment (see ``onboard``), it

1. takes the state dir's lock and the area's lock (one agent per deployment on a machine);
2. brings the last good release back from disk at once, so the customer's service runs even if
   the manager is unreachable right now;
3. keeps one outbound connection to the manager (``ManagerLink``) and converges to the desired
   release (``Converger``) whenever the manager pushes one;
4. runs the remote commands the manager hands it (``CommandRunner``: the ``commands``
   capability), on the functions of this area, through ``LocalDispatcher``;
5. refreshes ``status.json`` and the detail it reports to the manager every few seconds —
   including the command names each function registered (``detail["commands"]``), listed again
   whenever what runs changed, so the manager refuses an unknown command at once.

Stopping the agent (SIGTERM/SIGINT) stops the functions it supervises, gracefully: their ingress
lives in this process, and a function runtime exits when its parent goes away anyway, so leaving
them running would only leave them unreachable. A supervisor (systemd, …) restarting the agent
brings the last good release straight back (step 2). The lines the agent prints on stdout are
stable, for scripts::

    alien-deploy: deployment dep_… group/name
    alien-deploy: running rel_… api=http://127.0.0.1:41237

Everything else is logged to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from alien.agent.command_payloads import CommandPayloads
from alien.agent.commands import CommandRunner
from alien.agent.config import AgentConfig
from alien.agent.converge import Converger
from alien.agent.debug import DebugTunnels
from alien.agent.link import ManagerLink
from alien.agent.packages import PackageCache
from alien.agent.snapshot import detail, snapshot
from alien.agent.state import AgentState, StateDir
from alien.client.aio import AsyncManagerClient
from alien.client.config import ClientConfig
from alien.errors import Conflict
from alien.platforms.local.area import Area
from alien.platforms.local.dispatch import LocalDispatcher
from alien.platforms.local.platform import LocalPlatform
from alien.platforms.local.status import Status
from alien.protocol.agent_channel import (
    AGENT_INSTANCE_HEADER,
    CAPABILITY_COMMANDS,
    StatusReport,
)

log = logging.getLogger("alien.agent")

LINE_PREFIX = "alien-deploy: "
COMMANDS_WORK_DIR = "commands"
"""Under the area's ``run/``: large params and results in transit (emptied with it at every
start)."""


class Agent:
    def __init__(
        self, state_dir: StateDir, config: AgentConfig | None = None, *, out: TextIO | None = None
    ) -> None:
        self.dir = state_dir
        self.config = config or AgentConfig()
        self.out = out if out is not None else sys.stdout
        self._refresh = asyncio.Event()

    def _line(self, text: str) -> None:
        self.out.write(LINE_PREFIX + text + "\n")
        self.out.flush()

    def _announce(self, release: str, status: Status) -> None:
        urls = " ".join(f"{fid}={url}" for fid, url in sorted(status.urls.items()))
        self._line(f"running {release}" + (f" {urls}" if urls else ""))
        self._refresh.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (or the deployment is deleted); stop every function after."""
        self.dir.lock()
        try:
            state = self.dir.load()
            if state.deleted:
                raise Conflict(
                    f"deployment {state.ref} was deleted; use another --state-dir to onboard anew",
                    field="state_dir",
                )
            token = self.dir.read_token()
            platform = LocalPlatform(Area(state.area))
            await asyncio.to_thread(platform.open)
            try:
                await self._run(state, token, platform, stop)
            finally:
                log.info("stopping the functions of %s", state.ref)
                await platform.stop()
                self.dir.write_status({"deployment_id": state.deployment_id, "stopped": True})
                log.info("stopped")
        finally:
            self.dir.unlock()

    async def _run(
        self, state: AgentState, token: str, platform: LocalPlatform, stop: asyncio.Event
    ) -> None:
        self._line(f"deployment {state.deployment_id} {state.ref}")
        started = datetime.now(UTC)
        config = ClientConfig(base_url=state.manager_url, token=token)
        instance = self.dir.new_instance()
        async with AsyncManagerClient(
            config, extra_headers={AGENT_INSTANCE_HEADER: instance}
        ) as client:
            converger: Converger
            tunnels = DebugTunnels(state.manager_url, token, self.dir.root)
            tunnels.prepare()
            link = ManagerLink(
                client,
                token,
                self.config,
                current_release=lambda: converger.running,
                capabilities=lambda: (CAPABILITY_COMMANDS, *tunnels.capabilities),
                instance=instance,
            )
            link.on_connection_change.append(self._refresh.set)
            link.on_other_message.append(tunnels.on_message)
            work_dir = platform.area.run_dir / COMMANDS_WORK_DIR
            dispatcher = LocalDispatcher(platform, spool_dir=work_dir)
            runner = CommandRunner(
                link,
                dispatcher,
                CommandPayloads(work_dir),
                concurrency=self.config.command_concurrency,
                include_traceback=self.config.command_tracebacks,
            )
            runner.attach()
            converger = Converger(
                link,
                platform,
                PackageCache(self.dir.packages_dir, self.dir.downloads_dir),
                self.dir,
                state,
                announce=self._announce,
            )
            await converger.restore()
            tasks = [
                asyncio.create_task(link.run(), name="agent-link"),
                asyncio.create_task(converger.run(), name="agent-converge"),
                asyncio.create_task(runner.run(), name="agent-commands"),
                asyncio.create_task(
                    self._publish(state, platform, converger, link, runner, started),
                    name="agent-status",
                ),
            ]
            waits = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(converger.deleted.wait()),
            ]
            try:
                await asyncio.wait([*tasks, *waits], return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]  # a bug: surface it
            finally:
                for task in [*tasks, *waits]:
                    task.cancel()
                await asyncio.gather(*tasks, *waits, return_exceptions=True)
                await tunnels.aclose()
                await dispatcher.aclose()

    async def _publish(
        self,
        state: AgentState,
        platform: LocalPlatform,
        converger: Converger,
        link: ManagerLink,
        runner: CommandRunner,
        started: datetime,
    ) -> None:
        """Keep ``status.json`` fresh and send the manager a new detail whenever it changes."""
        sent: tuple[object, dict[str, object]] | None = None
        listed: object = None
        while True:
            try:
                status = await asyncio.to_thread(platform.status)
                running = converger.running
                versions = (
                    running,
                    sorted((f, e.address) for f, e in platform.control_endpoints().items()),
                )
                if versions != listed:  # a deploy or a restart: the command names may differ
                    await runner.refresh_known()
                    listed = versions
                await asyncio.to_thread(
                    self.dir.write_status, snapshot(state, status, running, link, started)
                )
                if link.connected:
                    fresh = detail(status, running, link, commands=runner.known)
                    key = (link.connected_at, fresh)
                    if key != sent and await link.send(StatusReport(detail=fresh)):
                        sent = key
            except Exception:  # a full disk, a corrupt state.json: report later, keep serving
                log.exception("could not refresh the agent's status")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.status_interval):
                    await self._refresh.wait()
            self._refresh.clear()
