"""SQLite's WAL is checkpointed by the database's own thread, never by a committing request."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from alien.manager import db as dbmod
from alien.manager.db import Database


def test_commits_leave_checkpoints_to_the_checkpoint_thread(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(dbmod, "CHECKPOINT_SECONDS", 0.2)
    path = tmp_path / "m.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as session:
            session.execute(text("CREATE TABLE t (a INTEGER, b TEXT)"))
            autocheckpoint = session.execute(text("PRAGMA wal_autocheckpoint")).scalar()
        assert autocheckpoint == 0  # no commit of ours ever checkpoints (and fsyncs) on its own
        for i in range(400):  # ~4 MB of WAL: past SQLite's default 1,000-page threshold
            with db.write() as session:
                session.execute(text("INSERT INTO t VALUES (:a, :b)"), {"a": i, "b": "x" * 8000})
        # Only a checkpoint writes pages into the database file itself.
        deadline = time.monotonic() + 10
        while path.stat().st_size < 3_000_000:
            assert time.monotonic() < deadline, "the checkpoint thread did not copy the WAL back"
            time.sleep(0.05)
    finally:
        db.dispose()
    assert not path.with_name("m.db-wal").exists() or path.with_name("m.db-wal").stat().st_size == 0
