"""HTTP over tunnel streams in memory: TunnelUpstream ↔ serve_http_stream, and relays."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from alien.protocol.frames import ErrorCode, Settings
from alien.protocol.http_exchange import RequestHead, UpstreamResponse
from alien.tunnel import TunnelClosed, TunnelConnection, TunnelStream, TunnelStreamReset
from alien.tunnel.connection import DEFAULT_WRITE_LIMIT
from alien.tunnel.http import (
    UPSTREAM_FAILED,
    TunnelUpstream,
    http_handler,
    relay,
    serve_http_stream,
)
from alien.tunnel.http_heads import request_meta
from alien.tunnel.memory import memory_pair
from tunnel.tunnel_support import (
    MiB,
    PatternUpstream,
    connected,
    expected_sha256,
    generate,
    hash_body,
    wait_until,
)


def request(target: str, *, reply: int = 0, body: int | None = None) -> RequestHead:
    headers = [("host", "s3.eu-west-1.amazonaws.com"), ("x-reply-bytes", str(reply))]
    if body is not None:
        headers.append(("content-length", str(body)))
    headers.append(("x-amz-meta-a", "1"))
    headers.append(("x-amz-meta-a", "2"))
    return RequestHead.create("PUT" if body else "GET", target, headers)


async def no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover  # makes this an async generator


async def test_a_request_and_its_response_stream_through_intact() -> None:
    upstream = PatternUpstream()
    async with connected(http_handler(upstream)) as (client, _server):
        size, reply = 5 * MiB + 3, 7 * MiB + 1
        head = request("/bucket/a%2Fb?x=1&y=%20", reply=reply, body=size)
        response = await TunnelUpstream(client).send(head, generate(size, 100_000))
        try:
            assert response.head.status == 200
            assert response.head.get("x-request-sha256") == expected_sha256(size)
            assert await hash_body(response.body) == (reply, expected_sha256(reply))
        finally:
            await response.aclose()
    seen_head, received, _ = upstream.seen[0]
    assert seen_head == head  # method, raw target, repeated headers in order
    assert received == size


async def test_many_exchanges_share_one_connection_concurrently() -> None:
    upstream = PatternUpstream()
    async with connected(http_handler(upstream)) as (client, _server):
        tunnel = TunnelUpstream(client)

        async def one(i: int) -> None:
            response = await tunnel.send(
                request(f"/k/{i}", reply=i * 1000, body=i * 500), generate(i * 500)
            )
            assert await hash_body(response.body) == (i * 1000, expected_sha256(i * 1000))
            assert response.head.get("x-request-sha256") == expected_sha256(i * 500)
            await response.aclose()

        await asyncio.gather(*(one(i) for i in range(1, 150)))
    assert len(upstream.seen) == 149


async def test_upstream_errors_become_error_responses() -> None:
    async with connected(http_handler(PatternUpstream())) as (client, _server):
        tunnel = TunnelUpstream(client)
        refused = await tunnel.send(request("/forbidden"), no_body())
        assert refused.head.status == 403
        body = json.loads(b"".join([c async for c in refused.body]))
        assert body["error"]["code"] == "FORBIDDEN"
        crashed = await tunnel.send(request("/boom"), no_body())
        assert crashed.head.status == 500
        assert b"upstream bug" not in b"".join([c async for c in crashed.body])


async def test_an_early_answer_stops_the_request_body_without_a_hang() -> None:
    async with connected(http_handler(PatternUpstream())) as (client, _server):
        sent = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal sent
            while True:
                sent += 64 * 1024
                yield bytes(64 * 1024)

        response = await TunnelUpstream(client).send(request("/early", body=10**12), endless())
        assert response.head.status == 413
        assert b"".join([c async for c in response.body]) == b"too big"
        await response.aclose()
        assert sent < 16 * MiB  # stopped by credit, then by the reset
        assert client.streams == []


async def test_an_upstream_failing_mid_body_resets_the_stream() -> None:
    async with connected(http_handler(PatternUpstream())) as (client, _server):
        response = await TunnelUpstream(client).send(request("/cut", reply=4 * MiB), no_body())
        assert response.head.status == 200
        with pytest.raises(TunnelStreamReset) as info:
            await hash_body(response.body)
        assert info.value.error_code == UPSTREAM_FAILED
        await response.aclose()


async def test_a_failing_request_body_aborts_the_request_on_both_sides() -> None:
    seen: list[BaseException] = []

    class Reader:
        async def send(self, head: RequestHead, body: AsyncIterator[bytes]) -> UpstreamResponse:
            try:
                await hash_body(body)
            except BaseException as exc:
                seen.append(exc)
                raise
            raise AssertionError("the body should not have ended normally")

    async def broken() -> AsyncIterator[bytes]:
        yield b"first part"
        raise ConnectionAbortedError("the local client went away")

    async with connected(http_handler(Reader())) as (client, _server):
        with pytest.raises(ConnectionAbortedError):
            await TunnelUpstream(client).send(request("/up", body=100), broken())
        await wait_until(lambda: seen)
    assert isinstance(seen[0], TunnelStreamReset) and seen[0].error_code == ErrorCode.CANCEL


async def test_a_malformed_request_is_refused_with_invalid_metadata() -> None:
    async with connected(http_handler(PatternUpstream())) as (client, _server):
        stream = await client.open_stream({"kind": "http", "method": "GET", "target": "/\r\nx"})
        with pytest.raises(TunnelStreamReset) as info:
            await stream.read()
        assert info.value.error_code == ErrorCode.INVALID_METADATA


async def test_a_dead_tunnel_fails_the_request_instead_of_hanging() -> None:
    async with connected() as (client, server):
        tunnel = TunnelUpstream(client)
        pending = asyncio.create_task(tunnel.send(request("/slow"), no_body()))
        await server.accept()  # nobody answers it
        await server.abort("the manager is restarting")
        async with asyncio.timeout(1):
            with pytest.raises(TunnelClosed):
                await pending
        with pytest.raises(TunnelClosed):
            await tunnel.send(request("/next"), no_body())


# --- relaying ---------------------------------------------------------------------------------


async def test_relay_a_to_b_to_c_keeps_order_and_bounds_memory() -> None:
    """CLI → manager → agent over two connections: the manager relays streams without parsing
    them; a 100 MB upload and download arrive intact, and the relay buffers about a window."""
    window = 1 * MiB
    settings = Settings(initial_window=window, connection_window=4 * window)
    upstream = PatternUpstream()
    results = []
    cli_end, manager_front = memory_pair()
    manager_back, agent_end = memory_pair()
    agent = TunnelConnection(agent_end, "client", handler=http_handler(upstream), settings=settings)
    back = TunnelConnection(manager_back, "server", settings=settings)

    async def relay_to_agent(stream: TunnelStream) -> None:
        results.append(await relay(stream, await back.open_stream(stream.meta)))

    front = TunnelConnection(manager_front, "server", handler=relay_to_agent, settings=settings)
    cli = TunnelConnection(cli_end, "client", settings=settings)
    size = 100 * MiB
    tracemalloc.start()
    try:
        async with agent, back, front, cli:
            response = await TunnelUpstream(cli).send(
                request("/big", reply=size, body=size), generate(size)
            )
            assert response.head.get("x-request-sha256") == expected_sha256(size)
            assert await hash_body(response.body) == (size, expected_sha256(size))
            await response.aclose()
            await wait_until(lambda: results)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert results[0].a_to_b == size and results[0].error is None
    assert results[0].b_to_a > size  # the body plus the response head
    # four connection ends, each holding at most a window received and a write buffer queued
    assert peak < 4 * (window + DEFAULT_WRITE_LIMIT), f"peak {peak / MiB:.1f} MiB"


async def test_relay_propagates_resets_both_ways() -> None:
    async with connected() as (cli, front_server), connected() as (back, agent):
        a = await cli.open_stream({"n": 1})
        b_in = await front_server.accept()
        b_out = await back.open_stream(b_in.meta)
        c = await agent.accept()
        relaying = asyncio.create_task(relay(b_in, b_out))
        await a.send(b"ping")
        assert await c.read() == b"ping"
        await c.reset(ErrorCode.APPLICATION_BASE + 5, "agent says no")
        result = await relaying
        with pytest.raises(TunnelStreamReset) as info:
            await a.read()
        assert info.value.error_code == ErrorCode.APPLICATION_BASE + 5
        assert info.value.reason == "agent says no"
        assert isinstance(result.error, TunnelStreamReset)
        assert result.a_to_b == 4


async def test_relay_resets_the_other_side_when_a_connection_dies() -> None:
    async with connected() as (cli, front_server):
        a_end, b_end = memory_pair()
        back = await TunnelConnection(a_end, "client").start()
        agent = await TunnelConnection(b_end, "server").start()
        a = await cli.open_stream({})
        relaying = asyncio.create_task(
            relay(await front_server.accept(), await back.open_stream({}))
        )
        await agent.accept()
        await a_end.abort()
        with pytest.raises(TunnelStreamReset) as info:
            await a.read()
        assert "relay" in info.value.reason or "connection" in info.value.reason
        assert isinstance((await relaying).error, TunnelClosed)
        await back.wait_closed()
        await agent.wait_closed()


async def test_serve_http_stream_can_be_called_directly() -> None:
    async with connected() as (client, server):
        tunnel = TunnelUpstream(client)
        pending = asyncio.create_task(tunnel.send(request("/direct", reply=10), no_body()))
        await serve_http_stream(await server.accept(), PatternUpstream())
        response = await pending
        assert await hash_body(response.body) == (10, expected_sha256(10))
        await response.aclose()
        assert request_meta(request("/x"))["kind"] == "http"
