"""The ``commands`` table as immutable snapshots, and the protocol's :class:`CommandRecord`.

A :class:`CommandSnapshot` is one row, all columns, frozen: it crosses threads (writer → event
loop), outlives its transaction, and is cheap — the hot paths read and write rows with SQLAlchemy
Core, not the ORM, because a command is created and answered hundreds of times a second and the
ORM's per-object bookkeeping would cost more than the SQL.

:func:`record_of` rebuilds (and so validates) the lifecycle part as a ``CommandRecord``;
:func:`with_record` writes a new record back into a snapshot, together with ``wakeup_at`` (the
protocol's ``next_wakeup``: what the sweeper indexes). Nothing else writes lifecycle columns, so
the manager can only ever store a state the protocol produced.

:class:`CommandStore` is one transaction's view of the table: rows are read once (by id, in
bulk when the writer prefetches a batch), changes are kept and sent together at the end
(one executemany per kind), and a row changed earlier in the batch is seen changed.

:class:`LiveCommands` keeps the committed snapshots of live commands, so answering a command
(the agent's response, moments after the create) needs no read at all. It is exact, not a
guess: the writer is the only writer of command rows (one manager process per database, held
by :mod:`alien.manager.serving_lock`) and updates it only after a commit, with what was
committed. A miss reads the database; a restarted manager starts empty; ended commands leave it.
Deleting a deployment takes its commands by cascade, so it is a writer operation too
(:mod:`.deletion`): its store forgets them (:meth:`~CommandStore.forget`) for the rest of the
batch, and the cache after the commit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.orm import Session

from alien.manager.db import utcnow
from alien.manager.driver_sql import DriverStatement
from alien.manager.models import Command
from alien.protocol.commands import TERMINAL_STATES, CommandRecord, CommandState, next_wakeup

TABLE = Command.__table__
COLUMNS = TABLE.c


@dataclass(frozen=True)
class CommandSnapshot:
    """A command row as stored at one moment (see the module docstring)."""

    id: str
    deployment_id: str
    command: str
    target: str
    state: CommandState
    attempt: int
    max_attempts: int
    created_at: datetime
    deadline: datetime
    lease_id: str | None
    lease_expires_at: datetime | None
    ended_at: datetime | None
    wakeup_at: datetime | None
    params: dict[str, Any] | None
    params_sha256: str | None
    params_size: int | None
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    idempotency_key: str | None
    request_digest: str | None
    traceparent: str | None
    created_by: str | None
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def record(self) -> CommandRecord:
        return record_of(self)

    def values(self) -> dict[str, Any]:
        """Column values, as written to the table."""
        out = {name: getattr(self, name) for name in _NAMES}
        out["state"] = self.state.value
        return out


_NAMES = tuple(f.name for f in fields(CommandSnapshot))
_LIFECYCLE = (
    "state",
    "attempt",
    "max_attempts",
    "created_at",
    "deadline",
    "lease_id",
    "lease_expires_at",
    "ended_at",
    "wakeup_at",
    "response",
    "error",
    "updated_at",
)
_INSERT = DriverStatement(insert(TABLE).values({name: bindparam(name) for name in _NAMES}))
_UPDATE = DriverStatement(
    update(TABLE)
    .where(COLUMNS.id == bindparam("key"))
    .values({name: bindparam(name) for name in _LIFECYCLE})
)
_RECORD_FIELDS = (
    "id",
    "deployment_id",
    "command",
    "state",
    "attempt",
    "max_attempts",
    "created_at",
    "deadline",
    "lease_id",
    "lease_expires_at",
    "ended_at",
    "response",
    "error",
)


def record_of(snap: CommandSnapshot) -> CommandRecord:
    """The protocol record of a snapshot (validated: a corrupt row fails loudly)."""
    return CommandRecord.model_validate({name: getattr(snap, name) for name in _RECORD_FIELDS})


def with_record(snap: CommandSnapshot, record: CommandRecord) -> CommandSnapshot:
    """``snap`` with ``record``'s lifecycle fields (which must be the same command)."""
    assert record.id == snap.id
    return replace(
        snap,
        state=record.state,
        attempt=record.attempt,
        max_attempts=record.max_attempts,
        created_at=record.created_at,
        deadline=record.deadline,
        lease_id=record.lease_id,
        lease_expires_at=record.lease_expires_at,
        ended_at=record.ended_at,
        wakeup_at=next_wakeup(record),
        response=record.response.model_dump(mode="json") if record.response else None,
        error=record.error.model_dump(mode="json") if record.error else None,
        updated_at=utcnow(),
    )


def from_row(row: Any) -> CommandSnapshot:
    """A snapshot of a Core result row of the full table."""
    values = dict(row._mapping)
    values["state"] = CommandState(values["state"])
    return CommandSnapshot(**values)


def read(session: Session, command_id: str) -> CommandSnapshot | None:
    """One command, outside the writer (reads of the API)."""
    row = session.execute(select(TABLE).where(COLUMNS.id == command_id)).first()
    return from_row(row) if row is not None else None


def query(session: Session, statement: Select[Any]) -> list[CommandSnapshot]:
    return [from_row(row) for row in session.execute(statement)]


class LiveCommands:
    """Committed snapshots of live commands, least recently used out (see the module docstring).

    Only the writer touches it, one batch at a time, so it needs no lock of its own."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._snaps: OrderedDict[str, CommandSnapshot] = OrderedDict()

    def get(self, command_id: str) -> CommandSnapshot | None:
        return self._snaps.get(command_id)

    def committed(self, snaps: list[CommandSnapshot]) -> None:
        for snap in snaps:
            if snap.terminal:
                self._snaps.pop(snap.id, None)
            else:
                self._snaps[snap.id] = snap
                self._snaps.move_to_end(snap.id)
        while len(self._snaps) > self._size:
            self._snaps.popitem(last=False)

    def forget(self, deployment_ids: set[str]) -> None:
        """Drop the commands of deleted deployments (a rare scan: deletions are)."""
        if not deployment_ids:
            return
        gone = [i for i, snap in self._snaps.items() if snap.deployment_id in deployment_ids]
        for command_id in gone:
            del self._snaps[command_id]

    def __len__(self) -> int:
        return len(self._snaps)


class CommandStore:
    """One transaction's view of the commands table (see the module docstring)."""

    def __init__(self, session: Session, live: LiveCommands | None = None) -> None:
        self._session = session
        self._live = live
        self._rows: dict[str, CommandSnapshot | None] = {}
        self._inserted: dict[str, CommandSnapshot] = {}
        self._updated: dict[str, CommandSnapshot] = {}
        self.written: list[CommandSnapshot] = []
        self.forgotten: set[str] = set()

    @classmethod
    def of(cls, session: Session, live: LiveCommands | None = None) -> CommandStore:
        """The store of ``session``'s transaction (created on first use)."""
        store = session.info.get("command_store")
        if store is None:
            store = session.info["command_store"] = cls(session, live)
        return store

    def load(self, ids: list[str]) -> None:
        """Read the rows of ``ids`` not read yet: from the live cache, the rest in one query."""
        missing = []
        for i in dict.fromkeys(ids):
            if i in self._rows:
                continue
            cached = self._live.get(i) if self._live is not None else None
            if cached is not None and cached.deployment_id not in self.forgotten:
                self._rows[i] = cached
            else:
                missing.append(i)
        if not missing:
            return
        for snap in query(self._session, select(TABLE).where(COLUMNS.id.in_(missing))):
            self._rows[snap.id] = snap
        for i in missing:
            self._rows.setdefault(i, None)

    def get(self, command_id: str) -> CommandSnapshot | None:
        if command_id not in self._rows:
            self.load([command_id])
        return self._rows[command_id]

    def select(self, statement: Select[Any]) -> list[CommandSnapshot]:
        """Rows matching ``statement`` (a select of the whole table) as this transaction sees
        them: a row changed earlier in the batch comes back changed. (Rows inserted earlier in
        the batch are not matched: they are not in the table yet.)"""
        out = []
        for snap in query(self._session, statement):
            known = self._rows.get(snap.id)
            if known is None:
                self._rows[snap.id] = known = snap
            out.append(known)
        return out

    def forget(self, deployment_id: str) -> None:
        """The deployment's commands are being deleted (by cascade, with it): from now on they
        are read from the table — where they are gone once the delete ran — not from what this
        batch or the live cache knew; after the commit the cache drops them too. Call once this
        batch's changes were sent (:meth:`flush`): what is still kept would otherwise be written
        back as if it were stored."""
        self.forgotten.add(deployment_id)
        for command_id, snap in list(self._rows.items()):
            if snap is not None and snap.deployment_id == deployment_id:
                del self._rows[command_id]

    def insert(self, snap: CommandSnapshot) -> None:
        self._rows[snap.id] = snap
        self._inserted[snap.id] = snap

    def update(self, snap: CommandSnapshot) -> None:
        self._rows[snap.id] = snap
        if snap.id in self._inserted:
            self._inserted[snap.id] = snap
        else:
            self._updated[snap.id] = snap

    def flush(self) -> None:
        """Send the batch's inserts and updates (one executemany each)."""
        self.written += [*self._inserted.values(), *self._updated.values()]
        if self._inserted:
            _INSERT.executemany(self._session, [s.values() for s in self._inserted.values()])
            self._inserted.clear()
        if self._updated:
            rows = []
            for snap in self._updated.values():
                values = snap.values()
                rows.append({"key": snap.id, **{name: values[name] for name in _LIFECYCLE}})
            _UPDATE.executemany(self._session, rows)
            self._updated.clear()


class StoreHooks:
    """The writer's batch hooks for the commands table, sharing one :class:`LiveCommands`."""

    def __init__(self, live: LiveCommands | None = None) -> None:
        self.live = live if live is not None else LiveCommands()

    def begin(self, session: Session, ids: list[str]) -> None:
        """Start of a batch: the store, and every row the batch's operations name, at once."""
        CommandStore.of(session, self.live).load(ids)

    def finish(self, session: Session) -> None:
        """End of a batch, before the commit: send what its operations changed."""
        CommandStore.of(session, self.live).flush()

    def committed(self, session: Session) -> None:
        """After the commit: the live cache learns what is now stored."""
        store = session.info.get("command_store")
        if store is not None:
            self.live.committed(store.written)
            self.live.forget(store.forgotten)
