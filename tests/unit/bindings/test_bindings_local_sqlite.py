"""Local kv and queue details that need a controllable clock or the database file itself."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from alien.bindings.local import LocalKv, LocalQueue
from alien.errors import BindingError


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_ttl_is_exact(tmp_path: Path, clock: Clock) -> None:
    kv = LocalKv(tmp_path / "kv.db", clock=clock)
    kv.set("k", b"v", ttl=10)
    clock.now += 9.999
    assert kv.get("k") == b"v"
    clock.now += 0.001
    assert kv.get("k") is None
    assert list(kv.scan()) == []
    assert kv.set_if_absent("k", b"new") is True


def test_expired_rows_are_reclaimed_by_writes(tmp_path: Path, clock: Clock) -> None:
    db = tmp_path / "kv.db"
    kv = LocalKv(db, clock=clock)
    for i in range(10):
        kv.set(f"tmp/{i}", b"v", ttl=1)
    kv.set("keep", b"v")
    clock.now += 2
    kv.set("trigger", b"v")
    assert rows(db, "kv") == 2
    kv.close()


def test_database_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "kv.db"
    kv = LocalKv(db)
    kv.set("k", b"v")
    for path in db.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    kv.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(BindingError, match="newer alien"):
        LocalQueue(db)


def test_visibility_is_exact(tmp_path: Path, clock: Clock) -> None:
    queue = LocalQueue(tmp_path / "q.db", visibility_timeout=30, clock=clock)
    queue.send("m")
    [first] = queue.receive()
    clock.now += 29.999
    assert queue.receive() == []
    clock.now += 0.001
    [second] = queue.receive()
    assert second.attempts == 2
    # A late ack of the first delivery must not delete the message now held by someone else.
    assert queue.ack(first) is False
    assert queue.ack(second) is True
    assert rows(tmp_path / "q.db", "messages") == 0


def test_ack_after_timeout_but_before_redelivery_still_works(tmp_path: Path, clock: Clock) -> None:
    queue = LocalQueue(tmp_path / "q.db", visibility_timeout=5, clock=clock)
    queue.send("m")
    [message] = queue.receive()
    clock.now += 60  # expired, but nobody received it again: the receipt is still current
    assert queue.ack(message) is True
    assert queue.receive() == []


def test_default_visibility_from_config(tmp_path: Path, clock: Clock) -> None:
    queue = LocalQueue(tmp_path / "q.db", visibility_timeout=2, clock=clock)
    queue.send("m")
    queue.receive()
    clock.now += 2
    assert [m.attempts for m in queue.receive(visibility_timeout=100)] == [2]
    clock.now += 50
    assert queue.receive() == []


def test_connections_are_per_thread_and_closed(tmp_path: Path) -> None:
    kv = LocalKv(tmp_path / "kv.db")
    kv.set("main", b"1")
    seen: list[bytes | None] = []
    thread = threading.Thread(target=lambda: seen.append(kv.get("main")))
    thread.start()
    thread.join()
    assert seen == [b"1"]
    kv.close()
    kv.close()  # idempotent
