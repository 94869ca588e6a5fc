"""Local kv: one SQLite table, expiry as an absolute wall-clock time per entry.

Expired rows are filtered out of every read (so they vanish exactly at their TTL) and
reclaimed a few at a time by later writes, which keeps each write's cost bounded.
Wall-clock time, not a monotonic clock, because several processes share the file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from alien.bindings.base import Kv
from alien.bindings.local.config import LocalKvConfig
from alien.bindings.local.sqlite import SqliteDb

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_at) WHERE expires_at IS NOT NULL",
)
_LIVE = "(expires_at IS NULL OR expires_at > :now)"
_PURGE_BATCH = 64
_SCAN_PAGE = 256


class LocalKv(Kv):
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteDb(path, _SCHEMA, version=1)
        self._clock = clock

    @classmethod
    def from_config(cls, resource_id: str, config: LocalKvConfig) -> LocalKv:
        return cls(config.path)

    def _expiry(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    def _get(self, key: str) -> bytes | None:
        row = (
            self._db.connection()
            .execute(
                f"SELECT value FROM kv WHERE key = :key AND {_LIVE}",
                {"key": key, "now": self._clock()},
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        now = self._clock()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO "
                "UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                (key, value, self._expiry(now, ttl)),
            )
            self._purge(conn, now)

    def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        now = self._clock()
        with self._db.write() as conn:
            # Inserts, or overwrites only an expired row; rowcount says which happened.
            cursor = conn.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :expires) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at WHERE kv.expires_at <= :now",
                {"key": key, "value": value, "expires": self._expiry(now, ttl), "now": now},
            )
            return cursor.rowcount == 1

    def _delete(self, key: str) -> bool:
        now = self._clock()
        with self._db.write() as conn:
            rows = conn.execute(
                "DELETE FROM kv WHERE key = ? RETURNING expires_at", (key,)
            ).fetchall()
        return any(expires is None or expires > now for (expires,) in rows)

    def _scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        # Paged, each page its own statement: no read transaction stays open across yields.
        after, op = prefix, ">="
        while True:
            rows = (
                self._db.connection()
                .execute(
                    f"SELECT key, value FROM kv WHERE key {op} :after AND {_LIVE} "
                    "ORDER BY key LIMIT :page",
                    {"after": after, "now": self._clock(), "page": _SCAN_PAGE},
                )
                .fetchall()
            )
            for key, value in rows:
                if not key.startswith(prefix):
                    return
                yield key, bytes(value)
            if len(rows) < _SCAN_PAGE:
                return
            after, op = rows[-1][0], ">"

    @staticmethod
    def _purge(conn: sqlite3.Connection, now: float) -> None:
        conn.execute(
            "DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at <= ? LIMIT ?)",
            (now, _PURGE_BATCH),
        )

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"LocalKv({str(self._db.path)!r})"
