"""Caches of rarely changing rows (who a token is, what a deployment reference names, a
deployment's policy), exact for every commit this process makes.

Why: a remote command costs the manager two short transactions, and before this cache almost
half of the first one was spent asking SQLAlchemy the same three questions it asked a moment
before — the caller's token, the deployment, the effective policy — whose rows change a few
times a day, not per request.

Why it is exact: every statement a connection runs is looked at (one prefix check); an INSERT,
UPDATE or DELETE marks its table, and when the connection goes back to the pool — after its
transaction committed or rolled back — each marked table's **version** is bumped. A
transaction takes a **stamp** of the versions before it begins, i.e. before its snapshot of the
database exists; an entry loaded in it is tagged with its tables' versions from that stamp, and
served only while they are unchanged. So an entry can never be newer-tagged than the data it
was loaded from: a commit racing the load bumps a version the tag does not have yet, and the
entry is simply loaded again next time. A revoked key is refused by the very next request.

What it cannot see: writes of *another* process (the manager keeps agents and tunnels in its own
memory and assumes it is the only one serving its database). ``MAX_AGE`` bounds how long a
change made elsewhere — by hand, say — can go unseen. Failures are never cached: a token that
does not resolve is looked up each time, so garbage cannot grow the cache.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_AGE = 1.0
"""Seconds an entry is served at most, whatever the versions say (writes of other processes)."""
MAX_ENTRIES = 10_000
"""A cache that grows past this is emptied (entries are cheap to load again)."""
STAMP_KEY = "alien.row_cache.stamp"
"""``Session.info`` key of the transaction's stamp (set by :class:`~alien.manager.db.Database`)."""
CACHES_KEY = "alien.row_cache.caches"
"""``Session.info`` key of the database's :class:`RowCaches` (set by the session factory)."""
_DIRTY_KEY = "alien.row_cache.dirty"
_WRITES_START = ("I", "U", "D", "W")
_WRITE = re.compile(r'\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.I)

Stamp = Mapping[str, int]


class TableVersions:
    """Per-table change counters of one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._seen)
        event.listen(engine.pool, "checkin", self._returned)

    def stamp(self) -> Stamp:
        """The versions now: take it before a transaction begins. (A bump replaces the dict, so
        the one handed out never changes.)"""
        return self._versions

    def _bump(self, tables: set[str]) -> None:
        with self._lock:
            versions = self._versions.copy()
            for table in tables:
                versions[table] = versions.get(table, 0) + 1
            self._versions = versions

    def _seen(
        self, conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip()[:1].upper() not in _WRITES_START:
            return
        match = _WRITE.search(statement)  # a WITH … may end in a write too
        if match is not None:
            mark_written(conn, match.group(1).lower())

    def _returned(self, _dbapi_connection: Any, record: Any) -> None:
        dirty = record.info.pop(_DIRTY_KEY, None) if record is not None else None
        if dirty:
            self._bump(dirty)


def mark_written(connection: Any, table: str) -> None:
    """Note that ``connection``'s transaction wrote ``table`` (its version is bumped when the
    connection goes back to the pool). For statements that bypass the cursor hook."""
    connection.info.setdefault(_DIRTY_KEY, set()).add(table)


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    tags: tuple[int, ...]
    loaded_at: float


class RowCache(Generic[K, V]):
    """One kind of cached answer, valid while ``tables`` are unchanged."""

    def __init__(self, versions: TableVersions, tables: tuple[str, ...]) -> None:
        self._versions = versions
        self._tables = tables
        self._entries: dict[K, _Entry[V]] = {}

    def get(self, stamp: Stamp | None, key: K, load: Callable[[], V]) -> V:
        """The answer for ``key``: remembered, or ``load()`` (in the transaction ``stamp`` was
        taken for; ``None``: no stamp, so nothing is remembered)."""
        if stamp is None:
            return load()
        now = time.monotonic()
        current = self._versions.stamp()
        entry = self._entries.get(key)
        if (
            entry is not None
            and now - entry.loaded_at < MAX_AGE
            and entry.tags == self._tags(current)
        ):
            return entry.value
        value = load()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = _Entry(value, self._tags(stamp), now)
        return value

    def _tags(self, versions: Stamp) -> tuple[int, ...]:
        return tuple(versions.get(table, 0) for table in self._tables)


@dataclass(frozen=True)
class CacheKind:
    """A named cache and the tables its answers are read from."""

    name: str
    tables: tuple[str, ...]


class RowCaches:
    """The caches of one database (answers of one database must never serve another)."""

    def __init__(self, engine: Engine) -> None:
        self.versions = TableVersions(engine)
        self._caches: dict[str, RowCache[Any, Any]] = {}
        self._lock = threading.Lock()

    def of(self, kind: CacheKind) -> RowCache[Any, Any]:
        cache = self._caches.get(kind.name)
        if cache is None:
            with self._lock:
                cache = self._caches.setdefault(kind.name, RowCache(self.versions, kind.tables))
        return cache


def cached(session: Session, kind: CacheKind, key: Hashable, load: Callable[[], V]) -> V:
    """``load()``'s answer for ``key``, remembered across transactions of ``session``'s database
    while ``kind.tables`` are unchanged (loaded each time in a session without a stamp)."""
    caches: RowCaches | None = session.info.get(CACHES_KEY)
    stamp: Stamp | None = session.info.get(STAMP_KEY)
    if caches is None or stamp is None:
        return load()
    cache: RowCache[Any, V] = caches.of(kind)
    return cache.get(stamp, key, load)
