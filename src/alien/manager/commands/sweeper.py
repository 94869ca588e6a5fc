"""The durable timer of commands: applies passed deadlines and lost leases.

Nothing about time is kept in memory: every live command's next moment of change is stored in
``commands.wakeup_at`` (the protocol's ``next_wakeup``), so after a restart the sweeper finds
exactly what fell due while the manager was down. It sleeps until the earliest ``wakeup_at``
and then runs one ``sweep`` operation through the writer (``tick`` on every due command, which
expires it, fails it with ``MAX_ATTEMPTS`` or offers it again), instead of polling.

Operations that set an earlier wake-up than the one planned (a short deadline, a fresh lease)
``hint`` it; a hint arriving while a sweep is in flight is remembered and honoured when the sweep
returns, because the sweep's own look at the earliest ``wakeup_at`` may predate that write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from alien.errors import AlienError
from alien.manager.db import utcnow

log = logging.getLogger("alien.manager.commands")

RETRY_AFTER_ERROR = timedelta(seconds=1)
IDLE_SLEEP = 3600.0


class Sweeper:
    def __init__(self, sweep: Callable[[], Awaitable[datetime | None]]) -> None:
        self._sweep = sweep
        self._event = asyncio.Event()
        self._planned: datetime | None = None
        self._sweeping = False
        self._hinted: datetime | None = None
        self.sweeps = 0

    def hint(self, when: datetime) -> None:
        """Something may change at ``when`` (call on the event loop)."""
        if self._sweeping:
            self._hinted = when if self._hinted is None else min(self._hinted, when)
        elif self._planned is None or when < self._planned:
            self._planned = when
            self._event.set()

    async def run(self) -> None:
        """Sweep, sleep until the next wake-up (or an earlier hint), forever."""
        while True:
            self._sweeping, self._hinted = True, None
            try:
                upcoming = await self._sweep()
            except AlienError as exc:
                log.warning("command sweep failed (%s); retrying", exc.code)
                upcoming = utcnow() + RETRY_AFTER_ERROR
            finally:
                self._sweeping = False
            self.sweeps += 1
            candidates = [t for t in (upcoming, self._hinted) if t is not None]
            self._planned = min(candidates) if candidates else None
            await self._sleep()

    async def _sleep(self) -> None:
        """Until the planned time; a hint moving it earlier shortens the sleep (no sweep)."""
        while True:
            self._event.clear()
            if self._planned is None:
                delay = IDLE_SLEEP
            else:
                delay = min((self._planned - utcnow()).total_seconds(), IDLE_SLEEP)
            if delay <= 0:
                return
            try:
                async with asyncio.timeout(delay):
                    await self._event.wait()
            except TimeoutError:
                return
