"""``LiteClient`` against a tiny asyncio HTTP server: the same contract as the httpx clients."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alien.client.call import Call
from alien.client.config import ClientConfig
from alien.client.errors import BadResponse, ManagerUnreachable
from alien.client.lite import LiteClient
from alien.debug.tls import SessionCertificate
from alien.errors import NotFound
from support.http_proxy import HttpProxy, running_proxy

Answer = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]


async def _serve(
    answer: Answer,
    seen: list[tuple[str, dict[str, str], bytes]],
    conns: list[int],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            lines = head.decode().split("\r\n")
            headers = dict(
                (k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:-2])
            )
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen.append((lines[0], headers, body))
            status, content = answer(lines[0], headers, body)
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(content)}\r\n\r\n".encode()
                + content
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    state: dict[str, Any] = {"answer": None, "seen": [], "conns": []}

    def answer(line: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        return state["answer"](line, headers, body)

    srv = await _serve(answer, state["seen"], state["conns"])
    state["url"] = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    yield state
    srv.close()


async def test_call_sends_token_params_and_json_and_reuses_the_connection(server: Any) -> None:
    server["answer"] = lambda line, headers, body: (
        200,
        json.dumps({"ok": json.loads(body)}).encode(),
    )
    config = ClientConfig(server["url"], token="ax_secret")
    call = Call("POST", "/v1/x", lambda d: d["ok"], params={"a": 1, "b": ["p", "q"]}, json={"k": 2})
    async with LiteClient(config) as client:
        assert await client.call(call) == {"k": 2}
        assert await client.call(call) == {"k": 2}
    line, headers, _ = server["seen"][0]
    assert line == "POST /v1/x?a=1&b=p&b=q HTTP/1.1"
    assert headers["authorization"] == "Bearer ax_secret"
    assert headers["content-type"] == "application/json"
    assert len(server["conns"]) == 1


async def test_error_bodies_become_alien_errors(server: Any) -> None:
    error = {"error": {"code": "NOT_FOUND", "message": "no such thing", "field": "id"}}
    server["answer"] = lambda *_: (404, json.dumps(error).encode())
    async with LiteClient(ClientConfig(server["url"])) as client:
        with pytest.raises(NotFound) as raised:
            await client.call(Call("GET", "/v1/y", lambda d: d))
    assert raised.value.message == "no such thing" and raised.value.field == "id"


async def test_undecodable_answer_is_bad_response(server: Any) -> None:
    server["answer"] = lambda *_: (200, b"{}")
    async with LiteClient(ClientConfig(server["url"])) as client:
        with pytest.raises(BadResponse):
            await client.call(Call("GET", "/v1/y", lambda d: d["missing"]))


async def test_unreachable_manager() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with LiteClient(ClientConfig(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(ManagerUnreachable):
            await client.call(Call("GET", "/v1/y", lambda d: d))


# --- through the environment's proxy (a real one: proxy.py) --------------------------------------


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpProxy]:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with running_proxy(tmp_path / "proxy", idle_timeout=1) as running:
        yield running


async def test_an_http_manager_is_called_through_http_proxy(
    server: Any, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    server["answer"] = lambda *_: (200, b'{"ok": 1}')
    async with LiteClient(ClientConfig(server["url"], token="ax_secret")) as client:
        for _ in range(2):
            assert await client.call(Call("GET", "/v1/x", lambda d: d["ok"])) == 1
    port = server["url"].rsplit(":", 1)[1]
    assert proxy.wait_for(f"GET 127.0.0.1:{port}/v1/x")
    assert len(server["seen"]) == 2
    assert "proxy-authorization" not in server["seen"][0][1]  # the proxy's, not forwarded


async def test_no_proxy_goes_direct(
    server: Any, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server["answer"] = lambda *_: (200, b'{"ok": 1}')
    async with LiteClient(ClientConfig(server["url"])) as client:
        assert await client.call(Call("GET", "/v1/x", lambda d: d["ok"])) == 1
    assert proxy.wait_for("127.0.0.1", timeout=1.0) == []


async def test_a_proxy_refusing_the_credentials_is_an_unreachable_manager(
    server: Any, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url_without_credentials)
    server["answer"] = lambda *_: (200, b'{"ok": 1}')
    async with LiteClient(ClientConfig(server["url"])) as client:
        with pytest.raises(ManagerUnreachable, match="407"):
            await client.call(Call("GET", "/v1/x", lambda d: d))
    assert server["seen"] == []


async def test_an_https_manager_is_reached_through_a_connect_tunnel(
    proxy: HttpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = SessionCertificate.generate()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.cert_pem)
    key_file.write_bytes(certificate.key_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    seen: list[tuple[str, dict[str, str], bytes]] = []
    srv = await _serve(lambda *_: (200, b'{"ok": 2}'), seen, [], ssl_context=tls)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with LiteClient(ClientConfig(f"https://127.0.0.1:{port}")) as client:
            assert await client.call(Call("GET", "/v1/x", lambda d: d["ok"])) == 2
    finally:
        srv.close()
    assert seen[0][0] == "GET /v1/x HTTP/1.1"  # origin form inside the tunnel
    assert proxy.wait_for(f"CONNECT 127.0.0.1:{port}")
