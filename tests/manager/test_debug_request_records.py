"""Proxied requests reach the audit trail whatever the caller named in them: a name the trail
cannot hold (control characters, overlong) is shown printable and cut, never allowed to fail
the batch of records it is written with."""

from __future__ import annotations

from datetime import UTC, datetime

from alien.manager.db import Database
from alien.manager.ids import new_id
from alien.manager.models import DebugSession
from alien.manager.services.audit import AuditFilter, AuditLog, list_records
from alien.manager.services.debug_sessions import MAX_OPERATION, RequestRecord, record_requests
from alien.protocol.audit import Signer


def _request(operation: str, error: str | None = None) -> RequestRecord:
    return RequestRecord(
        time=datetime.now(UTC),
        service="ec2",
        operation=operation,
        method="POST",
        status=200,
        bytes_in=1,
        bytes_out=2,
        duration_ms=1.0,
        error=error,
    )


def test_names_the_trail_cannot_hold_do_not_lose_the_batch(db: Database) -> None:
    now, session_id = datetime.now(UTC), new_id("dbg")
    with db.write() as session:
        session.add(
            DebugSession(
                id=session_id,
                deployment_ref="acme/prod",
                channel="aws",
                actor="key_1",
                reason="test",
                state="active",
                ttl_seconds=60,
                lookup="records0",
                token_hash="0" * 64,
                created_at=now,
            )
        )
    batch = [
        _request("DescribeInstances"),
        _request("Terminate\nInstances\x00", error="bad \x00 echo"),
        _request("A" * 5000),
        _request("ambiguous: DescribeInstances / TerminateInstances"),
    ]
    with db.write() as session:
        record_requests(session, AuditLog(Signer.generate()), session_id, batch)
    with db.read() as session:
        records = list_records(session, AuditFilter(action="debug.request", limit=10))
    targets = [record.target for record in records]
    assert targets[0] == "ec2:DescribeInstances"
    assert targets[1] == "ec2:Terminate\ufffdInstances\ufffd"
    assert records[1].details["error"] == "bad \ufffd echo"
    assert targets[2] == "ec2:" + "A" * MAX_OPERATION
    assert targets[3] == "ec2:ambiguous: DescribeInstances / TerminateInstances"
