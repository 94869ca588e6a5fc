"""Long-polls on one command: "tell me when it ends" without polling the database.

The writer publishes a command's snapshot after the commit that ended it; every waiter of that
command is woken with it. What a waiter gets is exactly what was just committed, so it needs no
second read; a waiter that is not woken (a timeout, or a manager restart in between) reads the
database, the source of truth. When the server stops, every wait ends at once as if its time ran
out (``None``, :meth:`Waiters.drain`): the caller answers with the command as it is, where
uvicorn would have cancelled the request after its grace period and answered 500. Register
**before** reading or creating: an ending that lands between the read and the wait then still
wakes the waiter.

Everything here runs on the event loop (the writer delivers through ``call_soon_threadsafe``),
so no lock is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from alien.manager.commands.records import CommandSnapshot


class Waiters:
    def __init__(self) -> None:
        self._futures: dict[str, set[asyncio.Future[CommandSnapshot | None]]] = {}
        self._draining = False

    @contextmanager
    def watch(self, command_id: str) -> Iterator[asyncio.Future[CommandSnapshot | None]]:
        """A future resolved with the command's snapshot when it ends (during the block), or
        with ``None`` when the server stops."""
        future: asyncio.Future[CommandSnapshot | None] = asyncio.get_running_loop().create_future()
        if self._draining:
            future.set_result(None)
        self._futures.setdefault(command_id, set()).add(future)
        try:
            yield future
        finally:
            waiting = self._futures.get(command_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._futures[command_id]
            if not future.done():
                future.cancel()

    def drain(self) -> None:
        """The server is stopping: end every wait now, and every one that starts later."""
        self._draining = True
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def publish(self, snap: CommandSnapshot) -> None:
        """Wake the waiters of ``snap.id`` (call on the event loop, after the commit)."""
        for future in self._futures.pop(snap.id, ()):
            if not future.done():
                future.set_result(snap)
