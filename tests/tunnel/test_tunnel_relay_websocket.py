"""The pull-model path over real WebSockets: CLI → manager → agent, two tunnel connections.

The agent dials the manager and serves HTTP streams; the CLI dials the manager and sends
requests; the manager relays each CLI stream to a stream it opens on the agent's connection,
without parsing it.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import RequestHead
from alien.tunnel import (
    WEBSOCKET_OPTIONS,
    TunnelConnection,
    TunnelStream,
    TunnelStreamReset,
)
from alien.tunnel.connection import DEFAULT_WRITE_LIMIT
from alien.tunnel.http import RelayResult, TunnelUpstream, http_handler, relay
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


class Manager:
    """``/agent`` keeps the agent's connection; ``/cli`` streams are relayed to it."""

    def __init__(self) -> None:
        self.agent: TunnelConnection | None = None
        self.relays: list[RelayResult] = []

    async def relay_to_agent(self, stream: TunnelStream) -> None:
        assert self.agent is not None
        self.relays.append(await relay(stream, await self.agent.open_stream(stream.meta)))

    async def serve(self, websocket: ServerConnection) -> None:
        transport = WebsocketsTransport(websocket)
        is_agent = websocket.request.path == "/agent"
        handler = None if is_agent else self.relay_to_agent
        async with TunnelConnection(
            transport, "server", handler=handler, settings=SETTINGS
        ) as conn:
            if is_agent:
                self.agent = conn
            await conn.wait_closed()


async def test_cli_to_agent_through_the_manager_relay() -> None:
    manager, upstream = Manager(), PatternUpstream()
    size = 100 * MiB
    tracemalloc.start()
    try:
        async with serve(manager.serve, "127.0.0.1", 0, **WEBSOCKET_OPTIONS) as listener:
            base = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
            async with (
                connect(f"{base}/agent", **WEBSOCKET_OPTIONS) as agent_ws,
                TunnelConnection(
                    WebsocketsTransport(agent_ws),
                    "client",
                    handler=http_handler(upstream),
                    settings=SETTINGS,
                ),
            ):
                await wait_until(lambda: manager.agent is not None)
                async with (
                    connect(f"{base}/cli", **WEBSOCKET_OPTIONS) as cli_ws,
                    TunnelConnection(
                        WebsocketsTransport(cli_ws), "client", settings=SETTINGS
                    ) as cli,
                ):
                    tunnel = TunnelUpstream(cli)
                    started = time.perf_counter()
                    await echo_both_ways(tunnel, size, "/bucket/key?partNumber=1")
                    elapsed = time.perf_counter() - started

                    # the agent refusing a stream reaches the CLI through the relay
                    refused = await cli.open_stream({"kind": "not-http"})
                    try:
                        await refused.read()
                        raise AssertionError("the stream should have been reset")
                    except TunnelStreamReset as exc:
                        assert exc.error_code == ErrorCode.INVALID_METADATA
                    await wait_until(lambda: len(manager.relays) == 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(
        f"\nrelayed {size // MiB} MiB up and down in {elapsed:.2f} s; traced peak "
        f"{peak / MiB:.1f} MiB"
    )
    assert manager.relays[0].a_to_b == size and manager.relays[0].error is None
    assert upstream.seen[0][0].target == "/bucket/key?partNumber=1"
    # four connection ends, each at most a window received and its write buffers queued
    assert peak < 4 * (WINDOW + DEFAULT_WRITE_LIMIT + WEBSOCKET_OPTIONS["write_limit"])


async def test_the_relay_keeps_concurrent_streams_apart() -> None:
    manager, upstream = Manager(), PatternUpstream()
    async with serve(manager.serve, "127.0.0.1", 0, **WEBSOCKET_OPTIONS) as listener:
        base = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        async with (
            connect(f"{base}/agent", **WEBSOCKET_OPTIONS) as agent_ws,
            TunnelConnection(
                WebsocketsTransport(agent_ws), "client", handler=http_handler(upstream)
            ),
        ):
            await wait_until(lambda: manager.agent is not None)
            async with (
                connect(f"{base}/cli", **WEBSOCKET_OPTIONS) as cli_ws,
                TunnelConnection(WebsocketsTransport(cli_ws), "client") as cli,
            ):
                tunnel = TunnelUpstream(cli)

                async def one(i: int) -> None:
                    head = RequestHead.create("GET", f"/k/{i}", [("x-reply-bytes", str(i * 3001))])
                    response = await tunnel.send(head, generate(0))
                    assert await hash_body(response.body) == (i * 3001, expected_sha256(i * 3001))
                    await response.aclose()

                await asyncio.gather(*(one(i) for i in range(200)))
    assert sorted(h.target for h, _, _ in upstream.seen) == sorted(f"/k/{i}" for i in range(200))
