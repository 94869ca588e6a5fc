"""Upgrade requests at a loopback endpoint (``upgrades=True``): checked like any request, then
raw bytes both ways once the upstream switched protocols.

The upstream is a small real one: it answers ``101`` and echoes what the client sends after the
handshake (what the cluster's API server does with an exec's stdin, in the end-to-end test in
tests/debug_pull/test_pull_kubectl.py, is the same bytes going the other way).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from alien.debug.auth import BearerTokenAuthenticator
from alien.debug.proxy import LoopbackProxy
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse

TOKEN = "session-token-0123456789abcdef"


class EchoingUpstream:
    """Switches protocols and sends back every byte it receives, until the client ends."""

    def __init__(self) -> None:
        self.seen: list[RequestHead] = []

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        self.seen.append(head)
        switched = ResponseHead.create(101, [("upgrade", "echo"), ("connection", "Upgrade")])
        return UpstreamResponse(head=switched, body=body)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[LoopbackProxy, EchoingUpstream]]:
    upstream = EchoingUpstream()
    proxy = LoopbackProxy(upstream, BearerTokenAuthenticator(TOKEN), upgrades=True)
    async with proxy:
        yield proxy, upstream


def upgrade_request(port: int, token: str) -> bytes:
    return (
        f"GET /exec?command=cat HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {token}\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n"
    ).encode()


async def test_after_the_switch_bytes_flow_both_ways(
    endpoint: tuple[LoopbackProxy, EchoingUpstream],
) -> None:
    proxy, upstream = endpoint
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(upgrade_request(proxy.port, TOKEN))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"upgrade: echo\r\n" in head and b"connection: upgrade\r\n" in head
    for message in (b"first", b"x" * 300_000, b"last"):
        writer.write(message)
        assert await reader.readexactly(len(message)) == message
    writer.write_eof()
    assert await reader.read() == b""  # the client's end is the exchange's end
    writer.close()
    (seen,) = upstream.seen
    assert seen.target == "/exec?command=cat" and seen.get("authorization") is None
    assert seen.get("upgrade") == "echo"


async def test_an_upgrade_without_the_session_token_is_refused_before_the_upstream(
    endpoint: tuple[LoopbackProxy, EchoingUpstream],
) -> None:
    proxy, upstream = endpoint
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(upgrade_request(proxy.port, "someone-elses-token"))
    answer = await reader.read()  # answered whole, then closed
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"connection: close\r\n" in answer
    assert b"does not carry this debug session's token" in answer
    assert upstream.seen == []


class SilentUpstream:
    """Switches protocols, then says nothing until its exchange is closed."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        async def nothing() -> AsyncIterator[bytes]:
            await asyncio.Event().wait()
            yield b""

        async def close() -> None:
            self.closed.set()

        switched = ResponseHead.create(101, [("upgrade", "echo")])
        return UpstreamResponse(head=switched, body=nothing(), close=close)


async def test_a_client_that_leaves_ends_the_exchange_at_once() -> None:
    """Not at the session's end: the far side's connection (an exec) is closed with it."""
    upstream = SilentUpstream()
    async with LoopbackProxy(upstream, BearerTokenAuthenticator(TOKEN), upgrades=True) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(upgrade_request(proxy.port, TOKEN))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.close()
        async with asyncio.timeout(5):
            await upstream.closed.wait()
