"""``LiteClient`` against a tiny asyncio HTTP server: the same contract as the httpx clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from alien.client.call import Call
from alien.client.config import ClientConfig
from alien.client.errors import BadResponse, ManagerUnreachable
from alien.client.lite import LiteClient
from alien.errors import NotFound

Answer = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]


async def _serve(answer: Answer, seen: list[tuple[str, dict[str, str], bytes]], conns: list[int]):
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

    return await asyncio.start_server(handle, "127.0.0.1", 0)


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
