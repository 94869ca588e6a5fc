"""One manager serves a database at a time.

Why: a manager is only correct as its database's sole writer. The command writer updates rows
without row locks, agents' presence and the wake-ups of waiting callers live in its memory, and
debug tunnels are relayed inside it. A second ``alien serve`` on the same database (an attempt at
high availability, a forgotten process) would lose updates without a word. So ``alien serve``
takes this lock before it opens (and migrates) the database, holds it for its whole life, and
refuses to start while another manager holds it, naming that manager. ``--standby`` waits for
the lock instead: the standby takes over when the serving manager stops. It must see the same
data dir (packages and the audit signing key live there).

* SQLite: ``flock`` on ``<database file>.serving``, which holds the holder's pid, host and start
  time. The kernel releases it when the process ends, however it ends.
* PostgreSQL: a session-level advisory lock on a connection of its own (autocommit, named
  ``alien manager <pid>@<host>`` in ``pg_stat_activity``). The server releases it when that
  connection ends. A manager whose lock connection breaks can no longer know whether another
  took over, so it stops serving (:meth:`ServingLock.held` turns false; ``alien serve`` then
  exits non-zero and a supervisor may restart it as a standby).

A lock held by a process that has just ended may take a moment to be released (PostgreSQL sees
the connection close on its next read), so a refusal comes only after ``grace`` seconds of
trying.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from alien.errors import AlienError
from alien.manager.db import psycopg_url

log = logging.getLogger("alien.manager")

PG_LOCK_KEY = 0x616C_736D
"""The advisory lock key (``"alsm"``), distinct from the audit's and the migrations' keys."""
GRACE_SECONDS = 3.0
POLL_SECONDS = 0.25
STANDBY_POLL_SECONDS = 1.0


class ManagerAlreadyServing(AlienError):
    """Another manager holds the lock (the message names it, as far as can be told)."""

    code = "MANAGER_ALREADY_SERVING"


class ServingLockLost(AlienError):
    """The lock's PostgreSQL connection broke while this manager served."""

    code = "MANAGER_LOCK_LOST"


class ServingLock(Protocol):
    can_be_lost: bool
    """Whether the lock may be lost while held (then ``held`` is worth asking now and then)."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; ``True`` if this process now holds it."""

    def holder(self) -> str:
        """Who holds the lock, as far as can be told (for the refusal message)."""

    def held(self) -> bool:
        """Whether this process still holds it (PostgreSQL: the lock connection answers)."""

    def release(self) -> None: ...


def serving_lock(database_url: str) -> ServingLock:
    """The lock for the database at ``database_url`` (as ``alien serve`` resolved it)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("a SQLite manager database is a file")
        return FileServingLock(Path(url.database).with_name(Path(url.database).name + ".serving"))
    return PostgresServingLock(database_url)


def acquire(
    lock: ServingLock,
    *,
    standby: bool = False,
    grace: float = GRACE_SECONDS,
    on_wait: Callable[[str], None] = lambda holder: None,
) -> None:
    """Hold ``lock`` or raise :class:`ManagerAlreadyServing`; ``standby``: wait for it as long
    as it takes (``on_wait`` is told once who holds it)."""
    deadline = time.monotonic() + grace
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    else:
        return
    holder = lock.holder()
    if not standby:
        raise ManagerAlreadyServing(
            f"another manager serves this database ({holder}); stop it first, or start this "
            "one with --standby to take over when it stops",
            field="database",
        )
    on_wait(holder)
    while not lock.try_acquire():
        time.sleep(STANDBY_POLL_SECONDS)


def describe_self() -> str:
    return f"alien manager {os.getpid()}@{socket.gethostname()}"


class FileServingLock:
    """``flock`` on a file beside the SQLite database (see the module docstring)."""

    can_be_lost = False  # held for as long as the process keeps the descriptor open

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{describe_self()}, since {started}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            described = self.path.read_text(errors="replace").strip()
        except OSError:
            described = ""
        return described or "unknown process"

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


class PostgresServingLock:
    """A session-level advisory lock on a connection of its own (see the module docstring)."""

    can_be_lost = True  # with its connection

    def __init__(self, database_url: str) -> None:
        # TCP keepalives: a lock connection cut by the network fails within ~15 s instead of
        # hanging on the kernel's defaults (hours), so ``held`` can answer.
        keepalives = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2}
        self._engine = create_engine(
            psycopg_url(database_url),
            poolclass=NullPool,
            connect_args={**keepalives, "keepalives_count": 3},
        )
        self._conn: Connection | None = None

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        name = describe_self()[:63]  # PostgreSQL truncates application_name at 63 bytes
        conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
        return conn

    def try_acquire(self) -> bool:
        conn = self._connect()
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
        if taken.scalar_one():
            self._conn = conn
            return True
        conn.close()
        return False

    def holder(self) -> str:
        query = text(
            "SELECT a.application_name, host(a.client_addr), a.backend_start"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid = 0 AND l.objid = :key"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        try:
            with self._engine.connect() as conn:
                row = conn.execute(query, {"key": PG_LOCK_KEY}).first()
        except SQLAlchemyError:
            row = None
        if row is None:
            return "unknown process"
        name, address, since = row
        where = f" from {address}" if address else ""
        return f"{name or 'unnamed session'}{where}, since {since.isoformat(timespec='seconds')}"

    def held(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.error("lost the connection that holds this manager's lock on the database")
            self._drop()
            return False
        return True

    def release(self) -> None:
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # if the connection is gone, so is the lock
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
            self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
