"""Push dispatch: delivering commands without an agent pulling them.

In the pull model an agent holds a WebSocket (or long-polls) and commands are handed to it. In
the push model the manager itself invokes the handler: a locally running function for
``alien dev`` (:class:`DirectDispatcher`), a cloud function invocation later. A push dispatcher is
registered for the deployments it serves; a command for such a deployment is dispatched to it
right after the create commits, and the dispatcher takes the lease, renews it while the handler
runs and answers — through a :class:`DispatchChannel` whose calls are the very operations an
agent's ``command_ack`` / ``command_renew`` / ``command_response`` messages run. So leases,
deadlines, retries and "late or duplicate responses are ignored" hold for push exactly as for
pull; only the transport differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from alien.protocol.agent_channel import CommandOffer, CommandReceipt
from alien.protocol.command_messages import HANDLER_ERROR, CommandResponse

log = logging.getLogger("alien.manager.commands")

Invoke = Callable[[CommandOffer], Awaitable[CommandResponse]]
"""Run one delivery's handler and return its response: ``alien.sdk.commands.run_command`` for a
handler in this process, or a platform's transport to a running function process —
``alien.platforms.dispatch.CommandDispatcher.invoke(offer.target, offer.envelope, params,
offload=…)`` (``alien.platforms.local.dispatch`` for ``alien dev``), with params fetched from
``params_ref`` and large results ``PUT`` to ``offer.result_upload_url``."""


class DispatchChannel(Protocol):
    """How a push dispatcher talks back: the agent channel's command operations."""

    async def ack(self, command_id: str, lease_id: str) -> CommandReceipt: ...

    async def renew(self, command_id: str, lease_id: str) -> CommandReceipt: ...

    async def respond(self, response: CommandResponse) -> CommandReceipt: ...


class Dispatcher(Protocol):
    """A push-model delivery mechanism for some deployments.

    ``deliver`` and ``cancel`` are called on the manager's event loop after the commit that
    dispatched (or ended) the command; they must not block — start a task. ``base_url`` is how
    the handler side reaches the manager (the signed URLs of a delivery use it).
    """

    base_url: str

    def deliver(self, offer: CommandOffer, channel: DispatchChannel) -> None: ...

    def cancel(self, command_id: str, code: str, message: str) -> None: ...


class DispatcherRegistry:
    """Which deployments are served by a push dispatcher (read by the writer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_deployment: dict[str, Dispatcher] = {}

    def register(self, deployment_id: str, dispatcher: Dispatcher) -> None:
        with self._lock:
            self._by_deployment[deployment_id] = dispatcher

    def unregister(self, deployment_id: str) -> None:
        with self._lock:
            self._by_deployment.pop(deployment_id, None)

    def get(self, deployment_id: str) -> Dispatcher | None:
        with self._lock:
            return self._by_deployment.get(deployment_id)


class DirectDispatcher:
    """Direct invocation of a function running on this machine (``alien dev``).

    Each delivery becomes a task: take the lease, call ``invoke`` while renewing the lease at
    half its remaining time, send the response. An ``invoke`` that raises is answered as a
    ``HANDLER_ERROR`` failure (the command must end with a response, not hang until its lease
    expires). Cancelling a command cancels its task.
    """

    def __init__(self, invoke: Invoke, *, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._invoke = invoke
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def deliver(self, offer: CommandOffer, channel: DispatchChannel) -> None:
        command_id = offer.envelope.id
        task = asyncio.create_task(self._run(offer, channel), name=f"command {command_id}")
        self._tasks[command_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(command_id, None))

    def cancel(self, command_id: str, code: str, message: str) -> None:
        task = self._tasks.get(command_id)
        if task is not None:
            log.info("stopping local command %s: %s", command_id, code)
            task.cancel()

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def _run(self, offer: CommandOffer, channel: DispatchChannel) -> None:
        envelope = offer.envelope
        receipt = await channel.ack(envelope.id, envelope.lease_id)
        if not receipt.ok:
            return
        keeper = asyncio.create_task(self._keep_lease(channel, receipt))
        try:
            response = await self._invoke(offer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("local command %s raised %s", envelope.id, type(exc).__name__)
            response = CommandResponse.failure(
                envelope.id, envelope.lease_id, HANDLER_ERROR, f"{type(exc).__name__}: {exc}"[:4096]
            )
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await channel.respond(response)

    @staticmethod
    async def _keep_lease(channel: DispatchChannel, receipt: CommandReceipt) -> None:
        while receipt.ok and receipt.lease_expires_at is not None:
            remaining = (receipt.lease_expires_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(remaining / 2, 0.05))
            receipt = await channel.renew(receipt.command_id, receipt.lease_id)
        # A refused renewal means the command ended or moved on; the manager's cancel (which
        # follows every such ending) stops the handler, so there is nothing more to do here.
        log.info("local command %s: lease not renewed (%s)", receipt.command_id, receipt.code)
