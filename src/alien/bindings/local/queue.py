"""Local queue: SQLite rows with a visibility time and a per-delivery receipt.

Receiving claims rows in one ``BEGIN IMMEDIATE`` transaction (sets a fresh receipt, bumps
``attempts``, hides the row until ``now + visibility_timeout``), so concurrent consumers in
any number of processes never get the same delivery. A row whose visibility time passes
without an ack becomes receivable again; the old receipt stops working the moment the row is
received again, which is what makes a late ``ack`` harmless (it returns ``False``).

Long-poll (``wait``) does not spin on the write lock: between claim attempts it watches
``PRAGMA data_version`` (changes when any other connection commits; reading it costs no I/O)
and the earliest visibility time, sleeping in short, growing steps.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alien.bindings.base import Message, Queue
from alien.bindings.local.config import LocalQueueConfig
from alien.bindings.local.sqlite import SqliteDb

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " body BLOB NOT NULL,"
    " sent_at REAL NOT NULL,"
    " visible_at REAL NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " receipt TEXT UNIQUE)",
    "CREATE INDEX IF NOT EXISTS messages_visible ON messages(visible_at, seq)",
)
_FIRST_PAUSE = 0.002
_MAX_PAUSE = 0.025


class LocalQueue(Queue):
    def __init__(
        self,
        path: Path,
        *,
        visibility_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = SqliteDb(path, _SCHEMA, version=1)
        self._visibility_timeout = visibility_timeout
        self._clock = clock

    @classmethod
    def from_config(cls, resource_id: str, config: LocalQueueConfig) -> LocalQueue:
        return cls(config.path, visibility_timeout=config.visibility_timeout)

    def _send(self, body: bytes, delay: float) -> str:
        message_id = f"msg_{uuid.uuid4().hex}"
        now = self._clock()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO messages (id, body, sent_at, visible_at) VALUES (?, ?, ?, ?)",
                (message_id, body, now, now + delay),
            )
        return message_id

    def _receive(
        self, max_messages: int, visibility_timeout: float | None, wait: float
    ) -> list[Message]:
        timeout = self._visibility_timeout if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + wait
        while True:
            claimed = self._claim(max_messages, timeout)
            if claimed or time.monotonic() >= deadline:
                return claimed
            self._await_change(deadline)

    def _claim(self, max_messages: int, timeout: float) -> list[Message]:
        # Cheap read first: don't take the write lock (and make others wait) for nothing.
        probe = "SELECT 1 FROM messages WHERE visible_at <= ? LIMIT 1"
        if self._db.connection().execute(probe, (self._clock(),)).fetchone() is None:
            return []
        with self._db.write() as conn:
            now = self._clock()  # read under the lock: waiting for it must not shorten timeouts
            rows = conn.execute(
                "SELECT seq, id, body, sent_at, attempts FROM messages WHERE visible_at <= ? "
                "ORDER BY visible_at, seq LIMIT ?",
                (now, max_messages),
            ).fetchall()
            claimed = []
            for seq, message_id, body, sent_at, attempts in rows:
                receipt = f"rcpt_{secrets.token_urlsafe(24)}"
                conn.execute(
                    "UPDATE messages SET receipt = ?, attempts = ?, visible_at = ? WHERE seq = ?",
                    (receipt, attempts + 1, now + timeout, seq),
                )
                claimed.append(
                    Message(
                        id=message_id,
                        body=bytes(body),
                        receipt=receipt,
                        attempts=attempts + 1,
                        sent_at=datetime.fromtimestamp(sent_at, UTC),
                    )
                )
        return claimed

    def _await_change(self, deadline: float) -> None:
        """Sleep until another connection commits, a message becomes visible, or ``deadline``."""
        conn = self._db.connection()
        version = _data_version(conn)
        (next_visible,) = conn.execute("SELECT min(visible_at) FROM messages").fetchone()
        pause = _FIRST_PAUSE
        while (remaining := deadline - time.monotonic()) > 0:
            step = min(pause, remaining)
            if next_visible is not None:
                until_visible = next_visible - self._clock()
                if until_visible <= 0:
                    return
                step = min(step, until_visible)
            time.sleep(step)
            if _data_version(conn) != version:
                return
            pause = min(pause * 2, _MAX_PAUSE)

    def _ack(self, receipt: str) -> bool:
        with self._db.write() as conn:
            return conn.execute("DELETE FROM messages WHERE receipt = ?", (receipt,)).rowcount == 1

    def _change_visibility(self, receipt: str, timeout: float) -> bool:
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE messages SET visible_at = ? WHERE receipt = ?",
                (self._clock() + timeout, receipt),
            )
            return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"LocalQueue({str(self._db.path)!r})"


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
