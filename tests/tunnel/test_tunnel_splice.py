"""The spliced pull-model path over real WebSockets: CLI → manager (splice) → agent.

The CLI is the tunnel's client and the agent its server; the manager forwards each message
as it is and only watches the frames (``TunnelSplice``). What the manager saw, how it ends the
tunnel, and that it buffers nothing beyond the message in hand are checked here.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from alien.protocol.frame_scan import Payload, ScanEvent
from alien.protocol.frames import (
    End,
    ErrorCode,
    GoAway,
    Hello,
    Open,
    Reset,
    Settings,
    decode_frames,
    encode_frame,
)
from alien.protocol.http_exchange import RequestHead
from alien.tunnel import WEBSOCKET_OPTIONS, TunnelClosed, TunnelConnection, TunnelStreamReset
from alien.tunnel.connection import DEFAULT_WRITE_LIMIT
from alien.tunnel.http import TunnelUpstream, http_handler
from alien.tunnel.memory import MemoryTransport, memory_pair
from alien.tunnel.splice import TunnelSplice
from alien.tunnel.websockets_transport import WebsocketsTransport
from tunnel.tunnel_support import (
    SETTINGS,
    WINDOW,
    MiB,
    PatternUpstream,
    echo_both_ways,
    expected_sha256,
    generate,
    hash_body,
    wait_until,
)

SESSION_ENDED = 0x100


@dataclass
class Watched:
    """What the observer was shown: opens, DATA bytes per (stream, from_client), ends, resets."""

    opened: list[int] = field(default_factory=list)
    data: dict[tuple[int, bool], int] = field(default_factory=dict)
    ended: list[tuple[int, bool]] = field(default_factory=list)
    resets: list[tuple[int, bool, int]] = field(default_factory=list)

    def __call__(self, event: ScanEvent, from_client: bool) -> None:
        if isinstance(event, Open):
            assert from_client
            self.opened.append(event.stream_id)
        elif isinstance(event, Payload):
            key = (event.stream_id, from_client)
            self.data[key] = self.data.get(key, 0) + len(event.data)
        elif isinstance(event, End):
            self.ended.append((event.stream_id, from_client))
        elif isinstance(event, Reset):
            self.resets.append((event.stream_id, from_client, event.code))


class Manager:
    """``/agent`` waits for ``/cli``; the two are spliced until either leaves."""

    def __init__(self) -> None:
        self.agent: WebsocketsTransport | None = None
        self.splice: TunnelSplice | None = None
        self.watched = Watched()

    async def serve(self, websocket: ServerConnection) -> None:
        transport = WebsocketsTransport(websocket)
        if websocket.request.path == "/agent":
            self.agent = transport
            await websocket.wait_closed()
            return
        assert self.agent is not None
        self.splice = await TunnelSplice(
            transport,
            self.agent,
            self.watched,
            names={"client": "the CLI", "server": "the agent"},
        ).start()
        await self.splice.wait_closed()


@asynccontextmanager
async def spliced(
    upstream: PatternUpstream, settings: Settings = SETTINGS
) -> AsyncIterator[tuple[Manager, TunnelConnection, TunnelConnection]]:
    """A manager splicing a CLI (client) to an agent (server answering with ``upstream``)."""
    manager = Manager()
    async with serve(manager.serve, "127.0.0.1", 0, **WEBSOCKET_OPTIONS) as listener:
        base = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        async with connect(f"{base}/agent", **WEBSOCKET_OPTIONS) as agent_ws:
            await wait_until(lambda: manager.agent is not None)
            agent = TunnelConnection(
                WebsocketsTransport(agent_ws),
                "server",
                handler=http_handler(upstream),
                settings=settings,
            )
            async with connect(f"{base}/cli", **WEBSOCKET_OPTIONS) as cli_ws:
                await agent.start()
                cli = TunnelConnection(WebsocketsTransport(cli_ws), "client", settings=settings)
                await cli.start()
                try:
                    yield manager, cli, agent
                finally:
                    await cli.abort("test over")
                    await agent.abort("test over")


async def test_a_large_exchange_streams_through_and_the_manager_sees_it() -> None:
    upstream = PatternUpstream()
    size = 100 * MiB
    tracemalloc.start()
    try:
        async with spliced(upstream) as (manager, cli, _agent):
            started = time.perf_counter()
            await echo_both_ways(TunnelUpstream(cli), size)
            elapsed = time.perf_counter() - started
            await wait_until(lambda: (1, False) in manager.watched.ended)
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\nspliced {size // MiB} MiB up and down in {elapsed:.2f} s; peak {peak / MiB:.1f} MiB")
    watched = manager.watched
    assert watched.opened == [1]
    assert watched.data[(1, True)] == size  # the request body, as it went by
    assert watched.data[(1, False)] > size  # the response: its head, then the body
    assert (1, True) in watched.ended
    # two connection ends, each at most a window received and its write buffers queued; the
    # splice itself holds one message per direction
    assert peak < 2 * (WINDOW + DEFAULT_WRITE_LIMIT + WEBSOCKET_OPTIONS["write_limit"]) + 4 * MiB


async def test_concurrent_streams_stay_apart_and_a_refusal_passes_through() -> None:
    upstream = PatternUpstream()
    async with spliced(upstream) as (manager, cli, _agent):
        tunnel = TunnelUpstream(cli)

        async def one(i: int) -> None:
            head = RequestHead.create("GET", f"/k/{i}", [("x-reply-bytes", str(i * 3001))])
            response = await tunnel.send(head, generate(0))
            assert await hash_body(response.body) == (i * 3001, expected_sha256(i * 3001))
            await response.aclose()

        await asyncio.gather(*(one(i) for i in range(200)))
        refused = await cli.open_stream({"kind": "not-http"})
        with pytest.raises(TunnelStreamReset) as caught:
            await refused.read()
        assert caught.value.error_code == ErrorCode.INVALID_METADATA
        await wait_until(lambda: any(r[0] == refused.id for r in manager.watched.resets))
    assert sorted(h.target for h, _, _ in upstream.seen) == sorted(f"/k/{i}" for i in range(200))
    assert len(manager.watched.opened) == 201
    assert (refused.id, False, ErrorCode.INVALID_METADATA) in manager.watched.resets


async def test_abort_tells_both_sides_why_and_closes_them() -> None:
    async with spliced(PatternUpstream()) as (manager, cli, agent):
        assert manager.splice is not None
        await manager.splice.abort("debug session dbg_1 revoked: enough", SESSION_ENDED)
        async with asyncio.timeout(5):
            await cli.wait_closed()
            await agent.wait_closed()
    for side in (cli, agent):
        error = side.close_error
        assert isinstance(error, TunnelClosed)
        assert "debug session dbg_1 revoked: enough" in error.message
        assert error.details["goaway_code"] == SESSION_ENDED


async def test_when_the_agent_leaves_the_cli_is_told() -> None:
    async with spliced(PatternUpstream()) as (manager, cli, agent):
        await agent.abort("the agent stops")
        await cli.wait_closed()
        assert manager.splice is not None
        await manager.splice.wait_closed()
        assert manager.splice.left == "server"
    error = cli.close_error
    assert isinstance(error, TunnelClosed)
    # the agent's own GOAWAY went through first: the CLI hears the agent's reason
    assert "the agent stops" in error.message


async def test_bytes_that_are_not_the_protocol_are_not_forwarded() -> None:
    async with spliced(PatternUpstream()) as (manager, cli, agent):
        assert manager.splice is not None
        cli_transport = cli._transport
        await cli_transport.send(encode_frame(End(1))[:4] + b"\xff" + b"\0" * 4)  # unknown flags
        await manager.splice.wait_closed()
        await agent.wait_closed()
        assert manager.splice.left is None
    error = agent.close_error
    assert isinstance(error, TunnelClosed)
    assert "the CLI broke the tunnel protocol" in error.message
    assert error.details["goaway_code"] == ErrorCode.PROTOCOL_ERROR


async def _bare_splice() -> tuple[TunnelSplice, MemoryTransport, MemoryTransport]:
    """A splice between two in-memory ends the test plays by hand: (splice, cli, agent)."""
    cli, cli_side = memory_pair()
    agent_side, agent = memory_pair()
    splice = await TunnelSplice(cli_side, agent_side, Watched()).start()
    return splice, cli, agent


async def test_an_abort_whose_caller_is_cancelled_still_closes_both_sides() -> None:
    """Cancelled while ending (e.g. the server shutting down): no transport is left open and
    nobody waits for the splice forever."""
    splice, cli, agent = await _bare_splice()
    # The agent's side stops taking messages: the pump towards it blocks in a send.
    for _ in range(20):
        await cli.send(encode_frame(Hello(SETTINGS)))
    ending = asyncio.create_task(splice.abort("bye"))
    await asyncio.sleep(0)
    ending.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(ending, return_exceptions=True)
        await splice.wait_closed()
        await splice.abort("again")  # returns at once
    for end in (cli, agent):
        with pytest.raises(TunnelClosed):
            while True:
                await end.recv()
    with pytest.raises(TunnelClosed):
        await cli.send(encode_frame(Hello(SETTINGS)))


async def test_a_goaway_is_preceded_by_a_hello_the_receiver_never_got() -> None:
    """The CLI's first message holds its HELLO and then garbage: nothing of it is forwarded, so
    the GOAWAY the agent gets must come after a HELLO of the manager's own."""
    splice, cli, agent = await _bare_splice()
    await cli.send(encode_frame(Hello(SETTINGS)) + encode_frame(End(1))[:4] + b"\xff" + b"\0" * 4)
    async with asyncio.timeout(5):
        await splice.wait_closed()
        frames = decode_frames(await agent.recv())
    assert isinstance(frames[0], Hello) and isinstance(frames[1], GoAway)
    assert frames[1].code == ErrorCode.PROTOCOL_ERROR


async def test_an_open_reusing_a_running_streams_id_is_not_forwarded() -> None:
    """The observer (the audit) follows streams by id: a second OPEN of a stream still running
    would replace its record before the agent refused the reuse. The splice refuses it first,
    so the observer saw the first OPEN only and the agent never gets the second."""
    async with spliced(PatternUpstream()) as (manager, cli, agent):
        assert manager.splice is not None
        first = await cli.open_stream({"first": True})
        await wait_until(lambda: manager.watched.opened == [first.id])
        await cli._transport.send(encode_frame(Open(first.id, b'{"second": true}')))
        await manager.splice.wait_closed()
        await agent.wait_closed()
        assert manager.watched.opened == [first.id]
    error = agent.close_error
    assert isinstance(error, TunnelClosed)
    assert f"OPEN reuses stream id {first.id}" in error.message
