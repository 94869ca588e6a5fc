"""SQLite plumbing shared by the local kv and queue: safe with many threads and processes.

* WAL, so readers never block the writer and vice versa; ``synchronous=FULL`` so a committed
  write survives power loss (these are durable stores, not caches).
* Writes run in ``BEGIN IMMEDIATE``: the write lock is taken up front, so two processes never
  both read-then-upgrade and deadlock into ``SQLITE_BUSY``; the busy timeout makes waiters
  queue instead of failing.
* One connection per thread (``.aio`` runs calls on worker threads), dropped after ``fork``
  (SQLite connections must not cross a fork).
* The file is created 0600 before SQLite opens it; SQLite gives ``-wal``/``-shm`` the same mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from alien.bindings.local.fsutil import PRIVATE_FILE, ensure_dir
from alien.errors import BindingError

BUSY_TIMEOUT = 30.0


class SqliteDb:
    """A SQLite database file with a versioned schema, opened lazily per thread."""

    def __init__(self, path: Path, schema: Sequence[str], version: int) -> None:
        self.path = path
        self._version = version
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        ensure_dir(path.parent)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE))
        self._migrate(schema)

    def _migrate(self, schema: Sequence[str]) -> None:
        with self.write() as conn:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > self._version:
                raise BindingError(
                    f"{self.path} was written by a newer alien (schema {found} > "
                    f"{self._version}); upgrade alien",
                    field="path",
                )
            for statement in schema:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(self._version)}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`write` for transactions)."""
        if os.getpid() != self._pid:
            # Inherited across fork: never touch the parent's handles, start afresh.
            self._pid = os.getpid()
            self._local = threading.local()
            self._lock = threading.Lock()
            self._connections = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
