"""Database engine and sessions.

Why a *sync* SQLAlchemy engine: Alembic is sync, the SQLite driver is sync, and every query here is
short; FastAPI runs sync route handlers in its threadpool, and the few async paths (long-polls, the
agent WebSocket) hop to a thread for their queries. Waiting is done on in-memory events
(:mod:`alien.manager.events`), never while holding a connection, so the pool stays small.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on. Write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade; reads stay ``DEFERRED`` and never
block anyone. Checkpoints (copying the WAL back into the database file, the only step that
fsyncs with ``synchronous=NORMAL``) are taken by a thread of their own (:class:`_Checkpointer`)
instead of by whichever commit crosses SQLite's threshold: that commit would otherwise stall for
the fsyncs, and the command writer commits on the event loop. PostgreSQL
(``postgresql+psycopg://…``) needs none of that.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from alien.errors import ValidationError
from alien.manager.row_cache import CACHES_KEY, STAMP_KEY, RowCaches

SQLITE_BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_SECONDS = 1.0
WRITE_OPTION = "alien_write"
log = logging.getLogger("alien.manager.db")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def psycopg_url(url: str) -> str:
    """A PostgreSQL URL with psycopg 3 as its driver (a bare ``postgresql://`` means psycopg2
    to SQLAlchemy, which alien does not depend on)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite file (tuned as above) or PostgreSQL via psycopg 3."""
    if url.startswith("sqlite"):
        # LIFO: the connection just returned is handed out again. Each SQLite connection has
        # its own page cache, valid only while no other connection wrote; FIFO rotated every
        # transaction onto the connection that had been idle longest, which re-read every page
        # it touched (about 50 reads per command, where a warm one needs none).
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_use_lifo=True)
        _tune_sqlite(engine)
        return engine
    if url.startswith("postgresql"):
        return create_engine(psycopg_url(url), pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ValidationError(
        "database URL must be sqlite:///… or postgresql+psycopg://…", field="ALIEN_DATABASE_URL"
    )


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpointer does it
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
        # Straight to the driver: through exec_driver_sql this one statement cost 60 µs of
        # SQLAlchemy's execution machinery, paid by every transaction.
        conn.connection.driver_connection.execute(f"BEGIN {mode}")


class Database:
    """Owns the engine and its row caches (:mod:`alien.manager.row_cache`); hands out short read
    or write sessions, each stamped for the caches before its transaction begins."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.caches = RowCaches(self.engine)
        self._checkpointer = _Checkpointer(self.engine) if url.startswith("sqlite") else None
        info = {CACHES_KEY: self.caches}
        self._read = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}),
            expire_on_commit=False,
            info=info,
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        stamp = {STAMP_KEY: self.caches.versions.stamp()}
        with self._read(info=stamp) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success, rolled back on any exception."""
        stamp = {STAMP_KEY: self.caches.versions.stamp()}
        with self._write(info=stamp) as session, session.begin():
            yield session

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


class _Checkpointer:
    """Checkpoints a SQLite database's WAL every ``CHECKPOINT_SECONDS``, on its own thread and
    connection. ``PASSIVE``: it never waits for (or blocks) readers and writers; what a reader
    still needs is copied at a later round. (Another process on the same file keeps SQLite's own
    automatic checkpoints: the setting is per connection.)"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="alien-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHECKPOINT_SECONDS):
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # a missed round is taken at the next one
                log.warning("WAL checkpoint failed", exc_info=True)
        with contextlib.suppress(Exception), self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
