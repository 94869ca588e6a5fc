"""``DriverStatement`` writes what ``Session.execute`` would, inside the session's transaction.

Checked on real databases (SQLite and PostgreSQL), on a small table of UTC datetimes, strings
and JSON (one column nullable): rows it inserts read back exactly as rows inserted through
SQLAlchemy (aware UTC datetimes, JSON dicts/lists, ``None`` in JSON, quotes and unicode); an
UPDATE changes exactly the rows named; an exception in the ``write()`` block after it rolls it
back; the row caches see the table written (its version is bumped when the connection goes back
to the pool, after commit or rollback); and no rows means no statement and no mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)

from alien.manager.db import Database, UTCDateTime
from alien.manager.driver_sql import DriverStatement

T = Table(
    "driver_probe",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("name", String(200), nullable=False),
    Column("doc", JSON, nullable=False),
    Column("extra", JSON, nullable=True),
)
INSERT = DriverStatement(insert(T))  # all columns, as the audit trail's statement
UPDATE = DriverStatement(
    update(T)
    .where(T.c.id == bindparam("key"))
    .values(name=bindparam("name"), extra=bindparam("extra"))
)
ODD = 'it\'s "quoted" — 100% ünïcødé ✓ 🚀 \\ %(x)s ?; DROP TABLE x; --'


@pytest.fixture
def db(database_url: str | None, tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url or f"sqlite:///{tmp_path / 'd.db'}")
    T.metadata.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def _rows(first_id: int) -> list[dict[str, Any]]:
    plus2 = timezone(timedelta(hours=2))
    return [
        {
            "id": first_id,
            "at": datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
            "name": ODD,
            "doc": {"a": [1, 2.5, None, True], "s": ODD, "nested": {"empty": []}},
            "extra": None,
        },
        {
            "id": first_id + 1,
            "at": datetime(2024, 3, 1, 1, 0, 0, 7, tzinfo=plus2),  # stored as UTC
            "name": "",
            "doc": [1, "two", {"3": None}],
            "extra": {"k": "v"},
        },
    ]


def _read(db: Database) -> dict[int, dict[str, Any]]:
    with db.read() as session:
        rows = session.execute(select(T, T.c.extra.is_(None).label("sql_null")).order_by(T.c.id))
        return {row.id: row._asdict() for row in rows}


def _version(db: Database) -> int:
    return db.caches.versions.stamp().get(T.name, 0)


def test_inserted_rows_read_back_as_sqlalchemy_written_ones(db: Database) -> None:
    with db.write() as session:
        INSERT.executemany(session, _rows(1))
        session.execute(insert(T), _rows(11))
    stored = _read(db)
    assert sorted(stored) == [1, 2, 11, 12]
    for first in (1, 11):
        for i, expected in enumerate(_rows(first)):
            row = stored[first + i]
            assert {k: row[k] for k in expected} == expected
            assert row["at"].utcoffset() == timedelta(0)
    for driver_id, sqlalchemy_id in ((1, 11), (2, 12)):  # same SQL NULL vs JSON null choice too
        assert {**stored[driver_id], "id": 0} == {**stored[sqlalchemy_id], "id": 0}


def test_update_changes_exactly_the_rows_named(db: Database) -> None:
    with db.write() as session:
        session.execute(insert(T), _rows(1) + _rows(3))
    with db.write() as session:
        UPDATE.executemany(
            session,
            [{"key": 1, "name": "one", "extra": [ODD]}, {"key": 4, "name": ODD, "extra": None}],
        )
    stored, before = _read(db), {r["id"]: r for r in _rows(1) + _rows(3)}
    assert (stored[1]["name"], stored[1]["extra"]) == ("one", [ODD])
    assert (stored[4]["name"], stored[4]["extra"]) == (ODD, None)
    for key in (2, 3):
        assert {k: stored[key][k] for k in before[key]} == before[key]
    assert stored[1]["doc"] == before[1]["doc"] and stored[4]["at"] == before[4]["at"]


def test_a_failing_transaction_stores_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        INSERT.executemany(session, _rows(1))
        raise RuntimeError("roll back")
    assert _read(db) == {}
    with db.write() as session:  # the connection went back to the pool in a usable state
        INSERT.executemany(session, _rows(1))
    assert sorted(_read(db)) == [1, 2]


def test_the_row_caches_see_the_write(db: Database) -> None:
    start = _version(db)
    with db.write() as session:
        INSERT.executemany(session, _rows(1))
        assert _version(db) == start  # bumped when the connection goes back, not before
    assert _version(db) == start + 1
    with pytest.raises(RuntimeError), db.write() as session:
        UPDATE.executemany(session, [{"key": 1, "name": "x", "extra": None}])
        raise RuntimeError("roll back")
    assert _version(db) == start + 2  # a rolled-back write counts as a change (conservative)
    with db.write() as session:
        UPDATE.executemany(session, [{"key": 2, "name": "y", "extra": None}])
    assert _version(db) == start + 3


def test_no_rows_execute_nothing_and_mark_nothing(db: Database) -> None:
    with db.write() as session:
        INSERT.executemany(session, [])
        UPDATE.executemany(session, iter(()))
    assert _read(db) == {}
    assert _version(db) == 0
