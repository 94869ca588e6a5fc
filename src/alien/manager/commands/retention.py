"""Retention: ended commands, and their large params and results, are deleted a while later.

**Commands.** A command row is deleted ``command_retention`` seconds (``ALIEN_COMMAND_RETENTION``,
30 days by default) after the command ended; a live command is never deleted. Its audit records
stay (the trail is kept forever); its idempotency key is forgotten with it.

**Payloads.** Large documents live in the command blob store (``<data dir>/command-blobs``),
one file per sha256, with a ``command_payloads`` row per use. Without a limit the store would only
grow. A row expires ``payload_retention`` seconds (``ALIEN_COMMAND_PAYLOAD_RETENTION``, 7 days
by default) after:

* a result's command ended (and with the command's row, when that goes first);
* a params upload was made, unless a command of that deployment naming those params has not
  ended yet, or ended within the retention period.

A blob file is deleted once its last row is gone. The collection runs as one operation of the
command writer, which also records every new row: an upload that recreates a file the collector
is deleting is recorded either before the collection (which then keeps the file) or after it —
and recording checks that the file is still there (params), or puts it there itself (results),
so nobody is handed a reference to nothing.
"Before" includes earlier operations of the collection's own batch: the writer sends a batch's
rows only at its end, so a collection first sends what the batch added until then (a payload
row, a command naming params), and counts those rows as it counts committed ones.
Files are unlinked inside the transaction; if its commit failed, the expired rows stay and are
collected again next time (their files were expired anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from alien.errors import AlienError
from alien.manager.blobs import BlobStore
from alien.manager.commands.records import CommandStore
from alien.manager.commands.writer import Effect, Op
from alien.manager.db import utcnow
from alien.manager.models import Command, CommandPayload

log = logging.getLogger("alien.manager.commands")

BATCH = 1000
"""Rows deleted per collection transaction (more are taken by the next one at once)."""
MAX_INTERVAL = 3600.0


def collect(store: BlobStore, retention: float, limit: int = BATCH) -> Op[int]:
    """Delete up to ``limit`` expired payload rows, and the files no row names any more; the
    number of rows deleted."""

    def op(session: Session) -> tuple[int, Sequence[Effect]]:
        send_the_batch(session)
        now = utcnow()
        cutoff = now - timedelta(seconds=retention)
        rows = _expired(session, cutoff, limit)
        remove_payloads(session, store, rows)
        return len(rows), ()

    return op


def send_the_batch(session: Session) -> None:
    """Send the rows earlier operations of this writer batch added: the writer does not
    autoflush and keeps command rows until the batch ends, so without this a payload recorded,
    or a command naming params created, moments ago would not count, and its file would go."""
    CommandStore.of(session).flush()
    session.flush()


def remove_payloads(session: Session, store: BlobStore, rows: Sequence[Row[Any]]) -> None:
    """Delete the payload ``rows`` (``id``, ``sha256``), and the files no row names any more."""
    if not rows:
        return
    ids = [row.id for row in rows]
    digests = {row.sha256 for row in rows}
    session.execute(delete(CommandPayload).where(CommandPayload.id.in_(ids)))
    still_named = set(
        session.scalars(
            select(CommandPayload.sha256).where(CommandPayload.sha256.in_(digests)).distinct()
        )
    )
    unnamed = digests - still_named
    for sha256 in unnamed:
        store.path_for(f"sha256:{sha256}").unlink(missing_ok=True)
    log.info("payloads removed: %d rows, %d files", len(ids), len(unnamed))


def _expired(session: Session, cutoff: datetime, limit: int) -> Sequence[Row[Any]]:
    payload = CommandPayload
    ended_result = exists().where(
        Command.id == payload.command_id, Command.ended_at.is_not(None), Command.ended_at < cutoff
    )
    still_used = exists().where(
        Command.deployment_id == payload.deployment_id,
        Command.params_sha256 == payload.sha256,
        or_(Command.ended_at.is_(None), Command.ended_at >= cutoff),
    )
    return session.execute(
        select(payload.id, payload.sha256)
        .where(
            or_(
                and_(payload.kind == "result", ended_result),
                and_(payload.kind == "params", payload.created_at < cutoff, ~still_used),
            )
        )
        .limit(limit)
    ).all()


def collect_commands(store: BlobStore, retention: float, limit: int = BATCH) -> Op[int]:
    """Delete up to ``limit`` commands that ended more than ``retention`` seconds ago, with their
    results' payloads (the rows would go by cascade, leaving their files behind); how many."""

    def op(session: Session) -> tuple[int, Sequence[Effect]]:
        send_the_batch(session)
        cutoff = utcnow() - timedelta(seconds=retention)
        expired = select(Command.id).where(Command.ended_at < cutoff).limit(limit)
        ids = list(session.scalars(expired))
        if ids:
            results = select(CommandPayload.id, CommandPayload.sha256).where(
                CommandPayload.command_id.in_(ids)
            )
            remove_payloads(session, store, session.execute(results).all())
            session.execute(delete(Command).where(Command.id.in_(ids)))
            log.info("command retention: %d ended commands removed", len(ids))
        return len(ids), ()

    return op


class RetentionJanitor:
    """Runs :func:`collect_commands`, then :func:`collect`, through ``run_op`` every
    ``interval`` seconds (a tenth of the shorter retention, at most an hour), draining a backlog
    in consecutive batches."""

    def __init__(
        self,
        run_op: Callable[[Op[int]], Awaitable[int]],
        store: BlobStore,
        *,
        payload_retention: float,
        command_retention: float,
    ) -> None:
        self._run_op = run_op
        self._store = store
        self._payload_retention = payload_retention
        self._command_retention = command_retention
        self.interval = min(min(payload_retention, command_retention) / 10, MAX_INTERVAL)

    async def run(self) -> None:
        while True:
            try:
                await self._drain(lambda: collect_commands(self._store, self._command_retention))
                await self._drain(lambda: collect(self._store, self._payload_retention))
            except AlienError as exc:
                log.warning("command retention failed (%s); retrying later", exc.code)
            await asyncio.sleep(self.interval)

    async def _drain(self, make: Callable[[], Op[int]]) -> None:
        while await self._run_op(make()) == BATCH:
            pass  # a full batch: more may be waiting
