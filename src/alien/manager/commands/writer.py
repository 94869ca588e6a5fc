"""The single writer of the ``commands`` tables: many operations per transaction.

Why one writer: every command write is short, but a transaction commit is not free (an fsync on
PostgreSQL, a WAL append and a lock hand-over on SQLite, where writers queue anyway). Under load
the writer takes every operation waiting for it and runs them in ONE transaction, so 64
concurrent invokers cost a handful of commits, not 64 — while a lone request still goes straight
through (nothing waits to "fill" a batch). Being the only writer of these rows in the process, it
also needs no row locks to avoid lost updates (one manager process serves a database: enforced
by :mod:`alien.manager.serving_lock`).

An operation is a callable ``op(session) -> (value, effects)``. It must raise before it changes
anything (validate, then write): an ``AlienError`` it raises fails that operation alone while the
rest of the batch commits. The session does not autoflush: the batch's writes go out together at
the commit (INSERTs and UPDATEs grouped into executemany), so an operation must not rely on
querying rows another operation of the same batch just added (reading rows it *changed* is fine:
the identity map hands back the changed object). ``session.info`` is a per-transaction memo
(e.g. the caller behind a token, looked up once per batch). An operation may name the rows it
will load (``keyed``) so the whole batch's rows are fetched in one query.

Where a batch runs depends on the database. On SQLite (``inline``, the default there) batches
run **on the event loop**: an operation submitted joins the batch that runs once the loop has
handled everything else that was ready (``call_soon``), so the requests that arrived together
commit together, and a lone request pays no hand-over at all. A SQLite commit costs no fsync
here (WAL, ``synchronous=NORMAL``), and a second thread bought no parallelism: its SQLAlchemy
work needs the GIL, and every system call of the event loop (each socket send) handed the GIL
to the writer for up to a switch interval. On PostgreSQL, whose commit is a round trip and an
fsync, batches run on the writer's thread, so the loop keeps serving while they commit.
Operations always commit in the order they were submitted.

``effects`` are callables run on the event loop only **after** the commit — pushing a message to
an agent, waking a waiter — so nobody ever acts on a change that could still roll back. If the
commit itself fails, each operation of the batch is retried in a transaction of its own, so one
bad operation cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict
from alien.manager.db import Database

log = logging.getLogger("alien.manager.commands")

T = TypeVar("T")
Effect = Callable[[], None]
Op = Callable[[Session], tuple[T, Sequence[Effect]]]
Begin = Callable[[Session, list[str]], None]
Finish = Callable[[Session], None]

MAX_BATCH = 256
_STOP = object()


@dataclass
class _Item:
    op: Op[Any]
    future: asyncio.Future[Any]
    value: Any = None
    error: BaseException | None = None
    effects: Sequence[Effect] = field(default_factory=tuple)


class BatchWriter:
    def __init__(
        self,
        db: Database,
        *,
        begin: Begin | None = None,
        finish: Finish | None = None,
        committed: Finish | None = None,
        max_batch: int = MAX_BATCH,
        inline: bool | None = None,
    ) -> None:
        """``begin(session, keys)`` runs before a batch's operations with every key they named;
        ``finish(session)`` after them, before the commit (to send buffered writes);
        ``committed(session)`` once the commit succeeded.
        ``inline`` (default: on for SQLite) runs batches on the event loop instead of a thread."""
        self._db = db
        self._begin = begin
        self._finish = finish
        self._committed = committed
        self._max_batch = max_batch
        self._inline = db.url.startswith("sqlite") if inline is None else inline
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: list[_Item] = []  # inline: submitted, to run at the loop's next turn
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._inline:
            return
        self._thread = threading.Thread(target=self._run, name="alien-command-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what the thread has queued, then stop it. (Inline batches are the loop's own:
        one waiting is run by its scheduled callback while the loop awaits this call.)"""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def submit(self, op: Op[T]) -> asyncio.Future[T]:
        """Queue ``op`` (call on the event loop); the future resolves after its batch committed."""
        assert self._loop is not None, "the writer is not started"
        future: asyncio.Future[T] = self._loop.create_future()
        item = _Item(op, future)
        if not self._inline:
            self._queue.put(item)
            return future
        self._waiting.append(item)
        if len(self._waiting) == 1:
            self._loop.call_soon(self._run_inline)
        return future

    async def run(self, op: Op[T]) -> T:
        """``submit`` and wait; raises what the operation raised."""
        return await self.submit(op)

    # --- inline: on the event loop -------------------------------------------------------------

    def _run_inline(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        if self._waiting:
            self._loop.call_soon(self._run_inline)  # type: ignore[union-attr]
        self._transact(batch)
        _deliver(batch)

    # --- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._transact(batch)
            try:
                self._loop.call_soon_threadsafe(_deliver, batch)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if stop:
                return

    def _transact(self, batch: list[_Item]) -> None:
        keys = [key for item in batch for key in getattr(item.op, "keys", ())]
        try:
            with self._db.write() as session, session.no_autoflush:
                if self._begin is not None:
                    self._begin(session, keys)
                for item in batch:
                    self._apply(item, session)
                if self._finish is not None:
                    self._finish(session)
        except Exception as exc:  # the commit (or a query) failed: isolate the culprit
            if len(batch) > 1:
                for item in batch:
                    item.value, item.error, item.effects = None, None, ()
                    self._transact([item])
                return
            batch[0].error = _as_alien(exc)
            batch[0].effects = ()
            return
        if self._committed is not None:
            self._committed(session)

    @staticmethod
    def _apply(item: _Item, session: Session) -> None:
        try:
            item.value, item.effects = item.op(session)
        except AlienError as exc:
            item.error = exc


def keyed(op: Op[T], *keys: str) -> Op[T]:
    """Mark ``op`` as loading the rows ``keys`` (prefetched with the rest of its batch)."""
    op.keys = keys  # type: ignore[attr-defined]
    return op


def _as_alien(exc: Exception) -> BaseException:
    if isinstance(exc, IntegrityError):
        log.info("command write conflicted: %s", exc.orig)
        return Conflict("the change conflicts with a concurrent one; retry")
    log.exception("command write failed", exc_info=exc)
    return AlienError("internal error while storing the command")


def _deliver(batch: list[_Item]) -> None:
    """On the event loop: run each committed operation's effects, then resolve its future."""
    for item in batch:
        for effect in item.effects:
            try:
                effect()
            except Exception:
                log.exception("a command effect failed")
        if item.future.done():  # the caller gave up (cancelled); the write stands
            continue
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.value)
