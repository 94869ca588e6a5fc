"""A level-triggered wake-up for tasks that wait on a condition over shared state.

The tunnel's state (credit, buffered bytes, open streams) is changed from plain synchronous code
(the reader dispatching protocol events), where ``asyncio.Condition`` cannot be used because
notifying it needs its lock. A :class:`Notifier` needs no lock: waiters check their predicate and
park on the current generation's future; :meth:`notify` resolves it and starts a new generation.
Everything runs on one event loop, so no wake-up can fall between a check and the park.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Notifier:
    """Wake every task in :meth:`wait_for` so it re-checks its predicate."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def notify(self) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(None)

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        """Return once ``predicate()`` is true (checked now and after every :meth:`notify`)."""
        while not predicate():
            if self._future is None:
                self._future = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._future)
