"""Appends to the audit trail across many transactions and threads keep one valid chain.

The manager remembers the chain heads between transactions instead of reading them back (after
a one-query check); these tests check what that must never break: concurrent writers (threads,
as the command writer and the request thread pool are) never seal onto the same predecessor, a
rolled-back transaction's records are never chained onto, appends made by another process are
chained after, and every deployment's own chain stays intact — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alien.manager.db import Database
from alien.manager.services.audit import (
    SYSTEM,
    AuditEntry,
    AuditFilter,
    AuditLog,
    list_records,
)
from alien.protocol.audit import Outcome, Signer, verify_chain


def _entry(deployment: str | None, n: int) -> AuditEntry:
    return AuditEntry(
        actor=SYSTEM,
        action="test.append",
        outcome=Outcome.SUCCEEDED,
        deployment=deployment,
        details={"n": n},
    )


def _all(db: Database) -> list:
    with db.read() as session:
        return list_records(session, AuditFilter(limit=1000))


def test_concurrent_transactions_build_one_chain(db: Database) -> None:
    log = AuditLog(Signer.generate())
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for n in range(25):
                with db.write() as session:
                    log.append(session, [_entry(f"dep_{(worker + n) % 3}", n), _entry(None, n)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = _all(db)
    assert [r.seq for r in records] == list(range(1, 201))
    report = verify_chain(records, log.signer.verifier)
    assert report.ok, report.problems


def test_a_rolled_back_append_is_never_chained_onto(db: Database) -> None:
    log = AuditLog(Signer.generate())
    with db.write() as session:
        log.append(session, [_entry("dep_a", 1)])
    with pytest.raises(RuntimeError), db.write() as session:
        log.append(session, [_entry("dep_a", 2), _entry("dep_b", 2)])
        raise RuntimeError("the change this record describes failed")
    with db.write() as session:
        log.append(session, [_entry("dep_a", 3), _entry("dep_b", 3)])
    records = _all(db)
    assert [r.details["n"] for r in records] == [1, 3, 3]
    assert verify_chain(records, log.signer.verifier).ok


def test_separate_logs_on_one_database_share_the_chain(db: Database) -> None:
    """The manager builds more than one ``AuditLog`` (one per service); they seal one chain."""
    signer = Signer.generate()
    first, second = AuditLog(signer), AuditLog(signer)
    for n in range(3):
        with db.write() as session:
            first.append(session, [_entry("dep_a", n)])
        with db.write() as session:
            second.append(session, [_entry("dep_a", n)])
    records = _all(db)
    assert len(records) == 6 and verify_chain(records, signer.verifier).ok


def test_appends_from_another_process_are_never_chained_past(db: Database, tmp_path: Path) -> None:
    """Another ``Database`` on the same store has a cache of its own, like another process."""
    other = Database(db.url)
    signer = Signer.generate()
    ours, theirs = AuditLog(signer), AuditLog(signer)
    try:
        for n in range(4):
            for database, log in ((db, ours), (other, theirs)):
                with database.write() as session:
                    log.append(session, [_entry("dep_a", n), _entry(f"dep_{n}", n)])
    finally:
        other.dispose()
    records = _all(db)
    assert [r.seq for r in records] == list(range(1, 17))
    assert verify_chain(records, signer.verifier).ok
