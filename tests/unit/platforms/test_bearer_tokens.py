"""The agent's token sources: Google's metadata server (the one documented endpoint every
GCE/GKE/Cloud Run instance serves, played here by a loopback server in the test process), a
token file, none."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alien.errors import AlienError
from alien.platforms.bearer_tokens import NoToken, TokenFile, query_names
from alien.platforms.gcp.tokens import TOKEN_PATH, MetadataToken


class Metadata(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[tuple[int, bytes]] = []
        self.seen: list[tuple[str, str | None]] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Metadata

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("metadata-flavor")))
        if self.headers.get("metadata-flavor") != "Google" or self.path != TOKEN_PATH:
            status, body = 403, b"missing Metadata-Flavor"
        else:
            status, body = self.server.answers.pop(0)
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def metadata() -> Iterator[Metadata]:
    server = Metadata()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _token(value: str, expires_in: int) -> tuple[int, bytes]:
    body = {"access_token": value, "expires_in": expires_in, "token_type": "Bearer"}
    return 200, json.dumps(body).encode()


async def test_a_metadata_token_is_reused_until_a_minute_before_it_expires(
    metadata: Metadata,
) -> None:
    metadata.answers += [_token("first", 3600), _token("second", 30), _token("third", 3600)]
    source = MetadataToken(metadata.host)
    try:
        assert await source.token() == "first"
        assert await source.token() == "first"  # cached: one fetch
        assert len(metadata.seen) == 1 and metadata.seen[0] == (TOKEN_PATH, "Google")
        source._renew_at = 0.0  # as if the hour had passed
        assert await source.token() == "second"
        assert await source.token() == "third"  # 30 s left is within the minute: fetched again
    finally:
        await source.aclose()


@pytest.mark.parametrize(
    "answer",
    [(404, b"no service account"), (200, b"not json"), (200, b'{"expires_in": 10}')],
)
async def test_a_metadata_failure_is_a_clear_error(
    metadata: Metadata, answer: tuple[int, bytes]
) -> None:
    metadata.answers.append(answer)
    source = MetadataToken(metadata.host)
    try:
        with pytest.raises(AlienError) as refused:
            await source.token()
        assert refused.value.code == "TOKEN_UNAVAILABLE" and refused.value.field == "gcp"
    finally:
        await source.aclose()


async def test_an_unreachable_metadata_server_is_a_clear_error() -> None:
    source = MetadataToken("127.0.0.1:9")  # discard: nothing listens
    try:
        with pytest.raises(AlienError, match="cannot be reached"):
            await source.token()
    finally:
        await source.aclose()


async def test_a_token_file_is_read_for_every_call(tmp_path: Path) -> None:
    path = tmp_path / "token"
    source = TokenFile(path, field="gcp.token_file")
    with pytest.raises(AlienError, match="cannot be read"):
        await source.token()
    path.write_text("")
    with pytest.raises(AlienError, match="is empty"):
        await source.token()
    path.write_text("one\n")
    assert await source.token() == "one"
    path.write_text("two")  # rotated by whoever keeps it fresh
    assert await source.token() == "two"


async def test_no_token_sends_none() -> None:
    assert await NoToken().token() is None


@pytest.mark.parametrize(
    ("target", "names"),
    [
        ("https://h/p", set()),
        ("https://h/p?a=1&B=2", {"a", "b"}),
        ("https://h/p?access%5Ftoken=x&%24key=y", {"access_token", "$key"}),
        ("https://h/p?x=1;key=y&&flag", {"x", "key", "flag"}),
        ("https://h/p?a+b=1#key=frag", {"a b"}),
        ("/origin?k=v", {"k"}),
    ],
)
def test_query_names_are_read_as_a_server_reads_them(target: str, names: set[str]) -> None:
    """Percent-decoded, ``+`` a space, lower-case, split at ``&`` and ``;``: a parameter is
    found whatever its spelling."""
    assert query_names(target) == names
