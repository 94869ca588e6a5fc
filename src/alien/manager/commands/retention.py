"""Payload retention: large params and results are deleted a while after their command ended.

Large documents live in the command blob store (``<data dir>/command-blobs``), one file per
sha256, with a ``command_payloads`` row per use. Without a limit the store would only grow. A row
expires ``payload_retention`` seconds (``ALIEN_COMMAND_PAYLOAD_RETENTION``, 7 days by default)
after:

* a result's command ended;
* a params upload was made, unless a command of that deployment naming those params has not
  ended yet, or ended within the retention period.

A blob file is deleted once its last row is gone. The collection runs as one operation of the
command writer, which also records every new row: an upload that recreates a file the collector
is deleting is recorded either before the collection (which then keeps the file) or after it —
and recording checks that the file is still there, so nobody is handed a reference to nothing.
Files are unlinked inside the transaction; if its commit failed, the expired rows stay and are
collected again next time (their files were expired anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from alien.errors import AlienError
from alien.manager.blobs import BlobStore
from alien.manager.commands.writer import Effect, Op
from alien.manager.db import utcnow
from alien.manager.models import Command, CommandPayload

log = logging.getLogger("alien.manager.commands")

BATCH = 1000
"""Rows examined per collection transaction (more are taken by the next one at once)."""
MAX_INTERVAL = 3600.0


def collect(store: BlobStore, retention: float, limit: int = BATCH) -> Op[int]:
    """Delete up to ``limit`` expired payload rows, and the files no row names any more; the
    number of rows deleted."""

    def op(session: Session) -> tuple[int, Sequence[Effect]]:
        now = utcnow()
        cutoff = now - timedelta(seconds=retention)
        ids, digests = _expired(session, cutoff, limit)
        if not ids:
            return 0, ()
        session.execute(delete(CommandPayload).where(CommandPayload.id.in_(ids)))
        still_named = set(
            session.scalars(
                select(CommandPayload.sha256).where(CommandPayload.sha256.in_(digests)).distinct()
            )
        )
        unnamed = digests - still_named
        for sha256 in unnamed:
            store.path_for(f"sha256:{sha256}").unlink(missing_ok=True)
        log.info("payload retention: %d rows, %d files removed", len(ids), len(unnamed))
        return len(ids), ()

    return op


def _expired(session: Session, cutoff: datetime, limit: int) -> tuple[list[int], set[str]]:
    payload = CommandPayload
    ended_result = exists().where(
        Command.id == payload.command_id, Command.ended_at.is_not(None), Command.ended_at < cutoff
    )
    still_used = exists().where(
        Command.deployment_id == payload.deployment_id,
        Command.params_sha256 == payload.sha256,
        or_(Command.ended_at.is_(None), Command.ended_at >= cutoff),
    )
    rows = session.execute(
        select(payload.id, payload.sha256)
        .where(
            or_(
                and_(payload.kind == "result", ended_result),
                and_(payload.kind == "params", payload.created_at < cutoff, ~still_used),
            )
        )
        .limit(limit)
    ).all()
    return [row.id for row in rows], {row.sha256 for row in rows}


class PayloadJanitor:
    """Runs :func:`collect` through ``run_op`` every ``interval`` seconds (a tenth of the
    retention, at most an hour), draining a backlog in consecutive batches."""

    def __init__(
        self,
        run_op: Callable[[Op[int]], Awaitable[int]],
        store: BlobStore,
        retention: float,
    ) -> None:
        self._run_op = run_op
        self._store = store
        self._retention = retention
        self.interval = min(retention / 10, MAX_INTERVAL)

    async def run(self) -> None:
        while True:
            try:
                while await self._run_op(collect(self._store, self._retention)) == BATCH:
                    pass  # a full batch: more may be waiting
            except AlienError as exc:
                log.warning("payload retention failed (%s); retrying later", exc.code)
            await asyncio.sleep(self.interval)
