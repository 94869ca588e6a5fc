"""The pure parts: naming AWS operations for the audit, batching audit writes, CLI routing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alien.cli.main import app
from alien.debug.child import exit_status, shell_command
from alien.debug.session import end_message
from alien.debug.session_calls import DebugSessionInfo, from_json
from alien.debug.session_dir import SessionDir
from alien.manager.aws_operations import PEEK_LIMIT, operation_of, s3_operation
from alien.manager.debug_audit import RequestRecorder
from alien.manager.services.debug_sessions import RequestRecord
from alien.protocol.http_exchange import RequestHead
from alien.tunnel.websocket_client import websocket_url


def _head(method: str, target: str, *headers: tuple[str, str]) -> RequestHead:
    return RequestHead.create(method, target, headers)


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        ("GET", "/", (), "ListBuckets"),
        ("PUT", "/b", (), "CreateBucket"),
        ("HEAD", "/b", (), "HeadBucket"),
        ("DELETE", "/b", (), "DeleteBucket"),
        ("GET", "/b?list-type=2&prefix=a%2F", (), "ListObjectsV2"),
        ("GET", "/b?prefix=", (), "ListObjects"),
        ("GET", "/b?location", (), "GetBucketLocation"),
        ("PUT", "/b?policy", (), "PutBucketPolicy"),
        ("GET", "/b?uploads", (), "ListMultipartUploads"),
        ("POST", "/b?delete", (), "DeleteObjects"),
        ("GET", "/b/dir/k.txt", (), "GetObject"),
        ("HEAD", "/b/k", (), "HeadObject"),
        ("PUT", "/b/k", (), "PutObject"),
        ("PUT", "/b/k", (("x-amz-copy-source", "/a/b"),), "CopyObject"),
        ("POST", "/b/k?uploads", (), "CreateMultipartUpload"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", (), "UploadPart"),
        ("POST", "/b/k?uploadId=u", (), "CompleteMultipartUpload"),
        ("DELETE", "/b/k?uploadId=u", (), "AbortMultipartUpload"),
        ("GET", "/b/k?tagging", (), "GetObjectTagging"),
        ("DELETE", "/b/a/../k", (), "DeleteObject"),
    ],
)
def test_s3_operations(
    method: str, target: str, headers: tuple[tuple[str, str], ...], operation: str
) -> None:
    assert s3_operation(method, target, _head(method, target, *headers)) == operation


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_operation_from_target_header_query_or_form_body() -> None:
    json_call = _head(
        "POST",
        "/",
        ("x-amz-target", "DynamoDB_20120810.ListTables"),
        ("content-type", "application/x-amz-json-1.0"),
    )
    assert (await operation_of("dynamodb", json_call, _chunks(b"{}")))[0] == "ListTables"
    query = _head("GET", "/?Action=ListUsers&Version=2010-05-08")
    assert (await operation_of("iam", query, _chunks()))[0] == "ListUsers"
    rest = _head("GET", "/2015-03-31/functions/")
    assert (await operation_of("lambda", rest, _chunks()))[0] == "GET /2015-03-31"

    form = _head("POST", "/", ("content-type", "application/x-www-form-urlencoded"))
    parts = (
        b"Version=2012-11-05&Acti",
        b"on=Send%4Dessage&QueueUrl=x",
        b"&MessageBody=" + b"y" * 9,
    )
    operation, body = await operation_of("sqs", form, _chunks(*parts))
    assert operation == "SendMessage"  # found across chunks, and percent-decoded
    assert await _collect(body) == b"".join(parts), "the body is forwarded unchanged"

    last = _head("POST", "/", ("content-type", "application/x-www-form-urlencoded"))
    operation, body = await operation_of(
        "sts", last, _chunks(b"Version=1&Action=GetCallerIdentity")
    )
    assert operation == "GetCallerIdentity"

    huge = (b"Version=" + b"v" * PEEK_LIMIT, b"&Action=Late")
    operation, body = await operation_of("sqs", form, _chunks(*huge))
    assert operation == "POST /", "only the first few KiB are looked at"
    assert await _collect(body) == b"".join(huge)


async def test_a_request_cannot_name_another_operation_for_the_trail() -> None:
    """Only where its protocol puts the name: S3 by method and path, whatever a header or a
    parameter says; X-Amz-Target only with a JSON body; a form naming two actions as both."""
    spoofed = _head("DELETE", "/bucket/data.csv?Action=GetObject", ("x-amz-target", "S3.GetObject"))
    assert (await operation_of("s3", spoofed, _chunks()))[0] == "DeleteObject"
    not_json = _head("POST", "/", ("x-amz-target", "X.Describe"), ("content-type", "text/plain"))
    assert (await operation_of("ec2", not_json, _chunks(b"")))[0] == "POST /"

    form = ("content-type", "application/x-www-form-urlencoded")
    both = _head("POST", "/?Action=DescribeInstances", form)
    body = b"Action=TerminateInstances&InstanceId.1=i-1"
    operation, forwarded = await operation_of("ec2", both, _chunks(body))
    assert operation == "ambiguous: DescribeInstances / TerminateInstances"
    assert await _collect(forwarded) == body
    twice = _head("POST", "/", form)
    operation, _ = await operation_of("ec2", twice, _chunks(b"Action=A&Action=B&Version=1"))
    assert operation == "ambiguous: A / B"
    agreeing = _head("POST", "/?Action=RunInstances", form)
    operation, _ = await operation_of("ec2", agreeing, _chunks(b"Action=RunInstances"))
    assert operation == "RunInstances"


def _record(n: int) -> RequestRecord:
    return RequestRecord(
        time=datetime.now(UTC),
        service="s3",
        operation=f"Op{n}",
        method="GET",
        status=200,
        bytes_in=0,
        bytes_out=n,
        duration_ms=1.0,
    )


async def test_recorder_writes_in_batches_off_the_event_loop() -> None:
    batches: list[list[str]] = []
    threads: set[int] = set()
    written = asyncio.Event()
    loop = asyncio.get_running_loop()

    def write(records: list[RequestRecord]) -> None:
        threads.add(threading.get_ident())
        batches.append([r.operation for r in records])
        loop.call_soon_threadsafe(written.set)

    recorder = RequestRecorder(write, max_batch=3, max_delay=60)
    await recorder.start()
    for n in range(3):
        recorder.add(_record(n))
    await asyncio.wait_for(written.wait(), 10)  # a full batch goes at once, not after 60 s
    recorder.add(_record(3))
    await recorder.aclose()  # what is pending is written on close
    assert batches == [["Op0", "Op1", "Op2"], ["Op3"]]
    assert threading.get_ident() not in threads


async def test_recorder_tries_a_failed_batch_again() -> None:
    """A write that fails (a deadlock, a dropped connection) does not lose the requests."""
    attempts: list[list[str]] = []
    failures = [2]  # how many writes fail before one works

    def write(records: list[RequestRecord]) -> None:
        attempts.append([r.operation for r in records])
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("deadlock detected")

    recorder = RequestRecorder(write, max_delay=60, retry_delays=(0.01, 0.01))
    recorder.add(_record(0))
    await recorder.flush()
    assert attempts == [["Op0"]] * 3  # failed twice, written the third time
    attempts.clear()
    failures[0] = 10
    recorder.add(_record(1))
    await recorder.flush()  # still failing after the retries: each record alone, then given up
    assert attempts == [["Op1"]] * 4


async def test_a_record_that_cannot_be_written_loses_no_other() -> None:
    written: list[str] = []

    def write(records: list[RequestRecord]) -> None:
        if any(r.operation == "Op1" for r in records):
            raise ValueError("this record is not valid")
        written.extend(r.operation for r in records)

    recorder = RequestRecorder(write, max_delay=60, retry_delays=(0.01,))
    for n in range(3):
        recorder.add(_record(n))
    await recorder.flush()
    assert written == ["Op0", "Op2"]


def test_messages_and_urls() -> None:
    assert websocket_url("https://m.example:8443", "/v1/x") == "wss://m.example:8443/v1/x"
    assert websocket_url("http://127.0.0.1:1", "/t") == "ws://127.0.0.1:1/t"
    assert exit_status(-2) == 130 and exit_status(3) == 3

    info = from_json(
        DebugSessionInfo,
        {
            "id": "dbg_1",
            "deployment_id": None,
            "deployment": "g/n",
            "channel": "aws",
            "actor": "key_a",
            "reason": "r",
            "state": "revoked",
            "ttl_seconds": 60,
            "created_at": "2026-01-01T00:00:00Z",
            "ended_by": "key_admin",
            "end_reason": "incident over",
            "tunnel_path": "/v1/debug-sessions/dbg_1/tunnel",
        },
    )
    assert end_message(info) == "debug session dbg_1 was revoked by key_admin: incident over"
    assert info.ended


def test_shell_prompt_marker(tmp_path: Path) -> None:
    with SessionDir.create("dbg_x", root=tmp_path) as files:
        argv, extra = shell_command(files, "g/n", {"SHELL": "/bin/bash"})
        assert argv[:2] == ["/bin/bash", "--rcfile"] and argv[-1] == "-i"
        assert "(alien-debug g/n) " in Path(argv[2]).read_text()
        assert extra == {}
        argv, extra = shell_command(files, "g/n", {"SHELL": "/bin/sh"})
        assert argv == ["/bin/sh", "-i"] and extra["PS1"].startswith("(alien-debug g/n)")


def test_debug_defaults_to_open_and_needs_a_reason_without_a_terminal() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["debug", "g/n", "--", "true"],
        env={"ALIEN_TOKEN": "ax_key_x", "ALIEN_MANAGER_URL": "http://127.0.0.1:9"},
    )
    assert result.exit_code == 1
    assert "a reason is required" in result.output
    listed = runner.invoke(app, ["debug", "--help"])
    assert listed.exit_code == 0 and "sessions" in listed.output
