"""The agent's Azure Blob upstream: what it signs is what goes on the wire, to the customer's
endpoint, with the account's key; refusals come before any connection. The whole path with the
real ``az`` and Azurite is in tests/debug_pull/test_pull_azure.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alien.errors import AlienError, Forbidden, PlatformError, ValidationError
from alien.platforms.azure.shared_key import format_date, verify
from alien.platforms.azure.upstream import (
    AzureBlobUpstream,
    BlobEndpoint,
    azure_blob_account,
    blob_operation,
    read_account_key,
)
from alien.protocol.http_exchange import RequestHead, iterate_once

KEY = bytes(range(64))
ACCOUNT = "acme"


class Recorder:
    """A loopback HTTP server that keeps each request's line and headers and answers 201."""

    def __init__(self) -> None:
        self.requests: list[RequestHead] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ")
        headers = [tuple(line.split(": ", 1)) for line in head[1:] if line]
        self.requests.append(RequestHead.create(method, target, headers))  # type: ignore[arg-type]
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    found = Recorder()
    server = await asyncio.start_server(found._serve, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


def _upstream(port: int, prefix: str = "") -> AzureBlobUpstream:
    return AzureBlobUpstream(
        ACCOUNT, KEY, BlobEndpoint.parse(f"http://127.0.0.1:{port}{prefix}", "e")
    )


async def _send(upstream: AzureBlobUpstream, target: str, headers: list[tuple[str, str]]) -> int:
    try:
        response = await upstream.send(
            RequestHead.create("PUT", target, headers), iterate_once(b"")
        )
        await response.aclose()
        return response.head.status
    finally:
        await upstream.aclose()


async def test_a_call_is_signed_with_the_accounts_key_over_the_path_it_is_sent_to(
    recorder: Recorder,
) -> None:
    now = datetime.now(UTC)
    headers = [
        ("x-ms-date", format_date(now)),
        ("x-ms-version", "2021-08-06"),
        ("authorization", "SharedKey acme:the-sessions-signature"),
        ("content-length", "0"),
    ]
    target = f"https://{ACCOUNT}.blob.core.windows.net/logs/a%20b.txt?comp=metadata"
    status = await _send(_upstream(recorder.port, "/acme"), target, headers)
    assert status == 201
    [seen] = recorder.requests
    assert seen.target == "/acme/logs/a%20b.txt?comp=metadata"  # the Azurite-style prefix kept
    assert seen.get("host") == f"127.0.0.1:{recorder.port}"
    assert seen.get_all("authorization") != ["SharedKey acme:the-sessions-signature"]
    verify(seen, ACCOUNT, KEY, now)  # the account's key, over exactly what arrived


async def test_another_account_is_refused_before_any_connection(recorder: Recorder) -> None:
    with pytest.raises(Forbidden) as refused:
        await _send(_upstream(recorder.port), "https://other.blob.core.windows.net/c", [])
    assert refused.value.code == "ACCOUNT_NOT_ALLOWED"
    assert recorder.requests == []


@pytest.mark.parametrize("query", ["?sig=abc&sv=2021-08-06", "?SIG=abc", "?comp=list&%73ig=x"])
async def test_a_shared_access_signature_of_the_callers_is_refused(
    recorder: Recorder, query: str
) -> None:
    """A SAS would make the call as whoever signed it, not as the deployment's key."""
    with pytest.raises(Forbidden) as refused:
        await _send(_upstream(recorder.port), f"https://acme.blob.core.windows.net/c{query}", [])
    assert refused.value.code == "CALLER_CREDENTIAL_REFUSED"
    assert recorder.requests == []


async def test_a_call_that_is_no_blob_call_is_refused(recorder: Recorder) -> None:
    with pytest.raises(ValidationError):
        await _send(_upstream(recorder.port), "https://acme.queue.core.windows.net/q", [])
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("url", "base", "prefix"),
    [
        ("https://acme.blob.core.windows.net", "https://acme.blob.core.windows.net", ""),
        ("http://127.0.0.1:10000/devstoreaccount1/", "http://127.0.0.1:10000", "/devstoreaccount1"),
        ("https://blob.private.example:8443/", "https://blob.private.example:8443", ""),
    ],
)
def test_a_blob_endpoint_is_a_base_and_a_path_prefix(url: str, base: str, prefix: str) -> None:
    assert BlobEndpoint.parse(url, "azure.blob_endpoint") == BlobEndpoint(base, prefix)


@pytest.mark.parametrize(
    "url", ["ftp://h", "not a url", "https://u:p@h", "https://h/?x=1", "https://h/#f", "/path"]
)
def test_a_bad_blob_endpoint_names_its_field(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BlobEndpoint.parse(url, "azure.blob_endpoint")
    assert refused.value.field == "azure.blob_endpoint"


def _dated(*headers: tuple[str, str]) -> list[tuple[str, str]]:
    return [("x-ms-date", format_date(datetime.now(UTC))), *headers]


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/logs?restype=container", [("x-ms-blob-public-access", "container")]),
        ("/logs?restype=container&comp=acl", [("X-MS-Blob-Public-Access", "blob")]),
        ("/?restype=service&comp=properties", []),
        ("/?RESTYPE=Service&%63omp=properties", []),
    ],
)
async def test_a_standing_way_in_is_refused_before_any_connection(
    recorder: Recorder, target: str, headers: list[tuple[str, str]]
) -> None:
    """Anonymous public access and a static website would serve the account's data to anyone
    after the session ended."""
    with pytest.raises(Forbidden) as refused:
        await _send(
            _upstream(recorder.port),
            f"https://acme.blob.core.windows.net{target}",
            _dated(*headers),
        )
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert recorder.requests == []


async def test_reading_the_service_properties_is_not_refused(recorder: Recorder) -> None:
    upstream = _upstream(recorder.port)
    head = RequestHead.create(
        "GET", "https://acme.blob.core.windows.net/?restype=service&comp=properties", _dated()
    )
    try:
        response = await upstream.send(head, iterate_once(b""))
        await response.aclose()
    finally:
        await upstream.aclose()
    assert [r.target for r in recorder.requests] == ["/?restype=service&comp=properties"]


@pytest.mark.parametrize("offset", [timedelta(minutes=-16), timedelta(minutes=16)])
async def test_a_call_dated_outside_azures_window_is_not_signed(
    recorder: Recorder, offset: timedelta
) -> None:
    """The agent's signature must not be good for later than the call (nor for a call whose
    date the caller picked far ahead)."""
    headers = [("x-ms-date", format_date(datetime.now(UTC) + offset))]
    with pytest.raises(Forbidden) as refused:
        await _send(_upstream(recorder.port), "https://acme.blob.core.windows.net/c", headers)
    assert refused.value.code == "AZURE_REQUEST_EXPIRED"
    with pytest.raises(Forbidden):
        await _send(_upstream(recorder.port), "https://acme.blob.core.windows.net/c", [])
    assert recorder.requests == []


@pytest.mark.parametrize(
    "path", ["/%2e%2e/other/c", "/c/..%2fother", "/c/%252E%252E/x", "/c\\..\\x"]
)
async def test_a_dot_segment_never_reaches_a_path_style_endpoint(
    recorder: Recorder, path: str
) -> None:
    """Behind ``/devstoreaccount1``, a server resolving ``%2e%2e`` would get a signed call for
    another path than the account's."""
    with pytest.raises(ValidationError):
        await _send(
            _upstream(recorder.port, "/acme"), f"https://acme.blob.core.windows.net{path}", _dated()
        )
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        (
            "PUT",
            "https://acme.blob.core.windows.net/logs?restype=container",
            [],
            "PUT /logs?restype=container",
        ),
        (
            "PUT",
            "https://acme.blob.core.windows.net/logs/b?blockid=QUJD&comp=block&x-ms-meta=secret",
            [],
            "PUT /logs/b?comp=block",
        ),
        (
            "PUT",
            "https://acme.blob.core.windows.net/logs?restype=container&Comp=ACL",
            [],
            "PUT /logs?restype=container&comp=acl",
        ),
        (
            "PUT",
            f"https://acme.blob.core.windows.net/logs/{'n' * 300}?comp=blocklist",
            [],
            f"PUT /logs/{'n' * 114}…?comp=blocklist",
        ),
        (
            "PUT",
            "https://acme.blob.core.windows.net/logs/copy",
            [("x-ms-copy-source", "https://elsewhere.example/x")],
            "PUT /logs/copy (copy from a URL)",
        ),
        ("GET", "https://acme.blob.core.windows.net/logs/a%20b", [], "GET /logs/a%20b"),
    ],
)
def test_the_audit_names_a_call_by_method_path_and_operation_only(
    method: str, target: str, headers: list[tuple[str, str]], operation: str
) -> None:
    assert blob_operation(RequestHead.create(method, target, headers)) == operation


def test_which_account_a_target_calls() -> None:
    assert azure_blob_account("https://acme.blob.core.windows.net/c") == "acme"
    assert azure_blob_account("https://acme.blob.core.windows.net:444/c") is None
    assert azure_blob_account("http://[::1/") is None


def test_the_account_key_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "key"
    good.write_text(base64.b64encode(KEY).decode() + "\n")
    assert read_account_key(good, "azure.key_file") == KEY
    with pytest.raises(PlatformError) as missing:
        read_account_key(tmp_path / "absent", "azure.key_file")
    assert missing.value.code == "KEY_UNAVAILABLE" and str(tmp_path) in missing.value.message
    bad = tmp_path / "bad"
    bad.write_text("not base64 at all!")
    with pytest.raises(AlienError) as refused:
        read_account_key(bad, "azure.key_file")
    assert refused.value.field == "azure.key_file"
    assert "not base64 at all" not in refused.value.message  # never the key's text
