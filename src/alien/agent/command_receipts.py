"""What the agent waits to hear back about command messages it sent.

Every ``command_ack`` / ``command_renew`` / ``command_response`` is answered by a
``command_receipt`` once the manager committed (or refused) it. Two kinds of waiting:

* :class:`Receipts` — a lease keeper sends an ack or renewal and awaits its receipt (with a
  timeout: a receipt lost with a dropped connection must not hang the keeper).
* :class:`Outbox` — a response is the one message that must not be lost: the handler's work
  would be wasted, and worse, re-done on the next attempt. It stays in the outbox until a
  receipt settles it, and is sent again after every reconnect and whenever it has waited
  ``resend_after`` seconds without one. Resending is safe: the manager stores the first response
  for a lease and answers a repeat with ``DUPLICATE_RESPONSE`` (an ``ok`` receipt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from alien.protocol.agent_channel import AgentMessage, CommandReceipt, CommandResponseMessage
from alien.protocol.command_messages import CommandResponse

log = logging.getLogger("alien.agent.commands")

Send = Callable[[AgentMessage], Awaitable[bool]]
"""Send one message to the manager; ``False`` when not connected (nothing was sent)."""
Key = tuple[str, str]
"""``(command_id, lease_id)``: one delivery."""

RESEND_AFTER = 5.0


class Receipts:
    """Receipts awaited for acks and renewals, by delivery and kind."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str, str], asyncio.Future[CommandReceipt]] = {}

    async def request(
        self, send: Send, message: AgentMessage, key: Key, of: str, timeout: float
    ) -> CommandReceipt | None:
        """Send ``message`` and wait up to ``timeout`` s for its receipt (``None``: none came,
        or it could not be sent)."""
        slot = (*key, of)
        future: asyncio.Future[CommandReceipt] = asyncio.get_running_loop().create_future()
        self._waiting[slot] = future
        try:
            if not await send(message):
                return None
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(slot) is future:
                del self._waiting[slot]

    def deliver(self, receipt: CommandReceipt) -> bool:
        """Hand ``receipt`` to whoever awaits it; ``False`` if nobody does."""
        future = self._waiting.pop((receipt.command_id, receipt.lease_id, receipt.of), None)
        if future is None or future.done():
            return False
        future.set_result(receipt)
        return True


@dataclass
class _Pending:
    response: CommandResponse
    sent_at: float


class Outbox:
    """Responses not yet settled by a receipt (see the module docstring)."""

    def __init__(self, send: Send, *, resend_after: float = RESEND_AFTER) -> None:
        self._send = send
        self._resend_after = resend_after
        self._pending: dict[Key, _Pending] = {}
        self._flushing: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: Key) -> bool:
        return key in self._pending

    async def put(self, response: CommandResponse) -> None:
        """Keep ``response`` until settled, and send it now if connected."""
        key = (response.command_id, response.lease_id)
        self._pending[key] = _Pending(response, time.monotonic())
        await self._send(CommandResponseMessage(response=response))

    def settle(self, receipt: CommandReceipt) -> bool:
        """Forget the response ``receipt`` answers; ``True`` if it was one of ours."""
        pending = self._pending.pop((receipt.command_id, receipt.lease_id), None)
        if pending is None:
            return False
        if not receipt.ok:
            log.info(
                "the manager refused the response to %s: %s (%s)",
                receipt.command_id,
                receipt.message or "",
                receipt.code,
            )
        return True

    async def resend(self, key: Key) -> None:
        """Send the response for ``key`` again (the manager offered that delivery again)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.sent_at = time.monotonic()
            await self._send(CommandResponseMessage(response=pending.response))

    def flush_soon(self) -> None:
        """Resend everything pending (after a reconnect), in the background."""
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._resend_older_than(0.0), name="outbox flush")

    async def run(self) -> None:
        """Resend what waited ``resend_after`` seconds without a receipt, until cancelled."""
        try:
            while True:
                await asyncio.sleep(self._resend_after / 2)
                await self._resend_older_than(self._resend_after)
        finally:
            if self._flushing is not None:
                self._flushing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flushing

    async def _resend_older_than(self, age: float) -> None:
        now = time.monotonic()
        stale = [key for key, p in self._pending.items() if now - p.sent_at >= age]
        if stale:
            log.info("sending %d unanswered command response(s) again", len(stale))
        for key in stale:
            await self.resend(key)
