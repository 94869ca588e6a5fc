"""Keeping one command's lease while the agent holds it: acknowledge, renew, notice the loss.

A delivery arrives with a lease that runs out at ``lease_expires_at`` (the manager's lease TTL
from the offer). Handlers that answer well within it never need more: the protocol accepts a
response for the offered lease, so a fast command costs the manager no extra write. A handler
still running at a third of the TTL has its lease taken (``command_ack``) and from then on
renewed (``command_renew``) every third of the TTL — two more chances before it would run out,
so one lost message or a short reconnect costs nothing.

The lease is lost when the manager refuses an ack or renewal (``STALE_LEASE``, the command was
cancelled or expired) or when it runs out while the manager cannot be reached; the keeper then
returns why, and the runner stops the handler (the manager offers the command again under a new
lease, attempt + 1). Only the manager's answer or a lease that ran out *without* an answer
counts, so expiries are compared with the local clock only when the manager is silent (clocks
are assumed to agree within a fraction of the TTL, as NTP keeps them). A lease that already
reaches the command's deadline cannot be extended: the keeper stops renewing and the deadline
ends the command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from alien.protocol.agent_channel import CommandReceipt
from alien.protocol.command_messages import STALE_LEASE

MIN_INTERVAL = 0.05
"""Never renew more often than this, however short the lease (a lease capped near the deadline
would otherwise shrink the interval towards zero)."""

LeaseRequest = Callable[[Literal["ack", "renew"], float], Awaitable[CommandReceipt | None]]
"""Send an ack or renewal and wait at most the given seconds for its receipt (``None``: no
receipt, e.g. not connected)."""
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Lease:
    """One delivery's lease as the agent knows it (expiries are the manager's timestamps)."""

    command_id: str
    lease_id: str
    expires_at: datetime
    deadline: datetime
    acked: bool = False


@dataclass(frozen=True)
class LeaseLost:
    """Why the agent no longer holds the lease (a command message error code)."""

    code: str
    message: str


class LeaseKeeper:
    def __init__(self, lease: Lease, request: LeaseRequest, *, clock: Clock = utc_now) -> None:
        self.lease = lease
        self._request = request
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Renew now rather than at the next interval (the connection came back)."""
        self._wake.set()

    def _remaining(self) -> float:
        return (self.lease.expires_at - self._clock()).total_seconds()

    async def keep(self) -> LeaseLost:
        """Hold the lease until it is lost (returns why) or the caller cancels this."""
        ttl = self._remaining()
        while True:
            if self.lease.expires_at >= self.lease.deadline:
                await asyncio.Future()  # nothing left to extend: wait to be cancelled
            interval = max(MIN_INTERVAL, ttl / 3)
            await self._sleep(interval)
            kind: Literal["ack", "renew"] = "renew" if self.lease.acked else "ack"
            receipt = await self._request(kind, interval)
            if receipt is None:  # not connected, or no answer in time
                if self._remaining() <= 0:
                    return LeaseLost(STALE_LEASE, "the lease ran out before it could be renewed")
                continue
            if not receipt.ok:
                return LeaseLost(
                    receipt.code or STALE_LEASE, receipt.message or "the manager refused the lease"
                )
            self.lease.acked = True
            if receipt.lease_expires_at is not None:
                self.lease.expires_at = receipt.lease_expires_at
            ttl = self._remaining()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()
