"""TunnelConnection and TunnelStream over an in-memory transport pair.

Two real connections talk to each other (``connected``), or one talks to a hand-driven sans-I/O
peer (``RawPeer``) when a test needs to see or break the wire.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from hashlib import sha256

import pytest

from alien.errors import ValidationError
from alien.protocol.errors import StreamStateError
from alien.protocol.frames import Data, ErrorCode, GoAway, Hello, Settings, decode_frames
from alien.protocol.tunnel import Connection
from alien.tunnel import (
    MemoryTransport,
    TunnelClosed,
    TunnelConnection,
    TunnelStream,
    TunnelStreamReset,
    memory_pair,
)
from alien.tunnel.connection import DEFAULT_WRITE_LIMIT
from tunnel.tunnel_support import (
    CHUNK,
    MiB,
    connected,
    expected_sha256,
    generate,
    hash_body,
    pattern,
    wait_until,
)


async def echo(stream: TunnelStream) -> None:
    async for chunk in stream:
        await stream.send(chunk)
    await stream.end()


class RawPeer:
    """The far end of a memory transport, driven by hand with the sans-I/O protocol."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.proto = Connection("server")
        self.messages: list[bytes] = []

    async def flush(self) -> None:
        if data := self.proto.data_to_send():
            await self.transport.send(data)

    async def receive(self) -> list[object]:
        message = await self.transport.recv()
        self.messages.append(message)
        return list(self.proto.receive_data(message))


# --- basics ---------------------------------------------------------------------------------


async def test_streams_carry_meta_and_bytes_both_ways() -> None:
    async with connected(echo) as (client, _server):
        stream = await client.open_stream({"method": "GET", "n": [1, 2]})
        await stream.send(b"hello ")
        await stream.send(memoryview(b"tunnel"))
        await stream.end()
        assert b"".join([chunk async for chunk in stream]) == b"hello tunnel"
        assert stream.at_eof and stream.done
        assert stream.bytes_sent == stream.bytes_received == 12
        assert client.streams == []


async def test_accept_hands_over_the_peers_streams_with_their_meta() -> None:
    async with connected() as (client, server):
        opened = await client.open_stream({"kind": "tcp", "port": 5432})
        await opened.end()
        accepted = await server.accept()
        assert accepted.meta == {"kind": "tcp", "port": 5432}
        assert accepted.id == opened.id and not accepted.opened_locally
        await accepted.send(b"from server")
        await accepted.end()
        assert await opened.read() == b"from server"
        assert await opened.read() == b""


async def test_accept_is_refused_when_a_handler_serves_streams() -> None:
    async with connected(echo) as (_client, server):
        with pytest.raises(ValidationError) as info:
            await server.accept()
        assert info.value.field == "handler"


async def test_read_in_pieces_and_exactly() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        await stream.send(b"0123456789")
        await stream.end()
        peer = await server.accept()
        await peer.end()
        assert await peer.read(3) == b"012"
        assert await peer.read_exactly(5) == b"34567"
        assert peer.buffered == 2
        with pytest.raises(Exception, match="2 bytes short"):
            await peer.read_exactly(4)
        with pytest.raises(ValidationError):
            await peer.read(0)


async def test_bad_use_is_refused_clearly() -> None:
    a, _b = memory_pair()
    conn = TunnelConnection(a, "client")
    with pytest.raises(ValidationError) as info:
        await conn.open_stream({})
    assert info.value.field == "start"
    with pytest.raises(ValidationError) as info:
        TunnelConnection(a, "client", ping_timeout=0)
    assert info.value.field == "ping_timeout"
    with pytest.raises(ValidationError):
        TunnelConnection(a, "peer")  # type: ignore[arg-type]
    async with connected() as (client, _server):
        with pytest.raises(ValidationError) as info:
            await client.open_stream({"x": float("nan")})
        assert info.value.field == "meta"
        stream = await client.open_stream({})
        await stream.end()
        await stream.end()  # idempotent
        with pytest.raises(StreamStateError):
            await stream.send(b"late")


async def test_ping_measures_a_round_trip() -> None:
    async with connected() as (client, server):
        assert 0 <= await client.ping() < 5
        assert 0 <= await server.ping() < 5


# --- concurrency and flow control -----------------------------------------------------------


async def test_many_concurrent_streams_beyond_the_peers_limit() -> None:
    """More streams than the peer allows at once: opening waits for a slot instead of failing."""
    limit, count = 8, 60
    concurrent = peak = 0
    full = asyncio.Event()  # the first handlers hold on until the limit is reached

    async def handler(stream: TunnelStream) -> None:
        nonlocal concurrent, peak
        concurrent += 1
        peak = max(peak, concurrent)
        if concurrent == limit:
            full.set()
        await full.wait()
        size, digest = await hash_body(aiter(stream))
        await stream.send(f"{size}:{digest}".encode())
        await stream.end()
        concurrent -= 1

    server_settings = Settings(max_concurrent_streams=limit)
    a, b = memory_pair()
    async with (
        TunnelConnection(a, "client") as client,
        TunnelConnection(b, "server", handler=handler, settings=server_settings),
    ):

        async def one(i: int) -> None:
            size = 1000 * i + 1
            stream = await client.open_stream({"i": i})
            async for chunk in generate(size, 4096):
                await stream.send(chunk)
            await stream.end()
            reply = b"".join([c async for c in stream]).decode()
            assert reply == f"{size}:{expected_sha256(size)}"

        await asyncio.gather(*(one(i) for i in range(count)))
    assert peak == limit


async def test_a_slow_consumer_blocks_the_sender_and_bounds_memory() -> None:
    """200 MB through one stream: while the reader pauses, the sender stops after one window;
    traced memory stays a small multiple of the windows throughout."""
    total, window = 200 * MiB, 1 * MiB
    settings = Settings(initial_window=window, connection_window=4 * window)
    tracemalloc.start()
    try:
        async with connected(settings=settings) as (client, server):
            stream = await client.open_stream({})

            async def send_all() -> None:
                async for chunk in generate(total):
                    await stream.send(chunk)
                await stream.end()

            sender = asyncio.create_task(send_all())
            peer = await server.accept()
            digest, consumed = sha256(), 0
            while consumed < 8 * MiB:  # a burst of reading, then a pause
                chunk = await peer.read()
                digest.update(chunk)
                consumed += len(chunk)
            # Stalled for good: no credit, everything sent has arrived, and more than 3/4 of a
            # window is buffered (so the last credit the pause allowed has been used: credit
            # returns in quarter-window batches).
            await wait_until(
                lambda: (
                    stream.send_credit == 0
                    and peer.buffered == stream.bytes_sent - consumed
                    and peer.buffered > window * 3 // 4
                )
            )
            stalled_at = stream.bytes_sent
            for _ in range(100):
                await asyncio.sleep(0)
            assert stream.bytes_sent == stalled_at, "the sender kept going"
            assert not sender.done()
            assert stalled_at - consumed <= window
            async for chunk in peer:
                digest.update(chunk)
                consumed += len(chunk)
            await sender
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert consumed == total
    assert digest.hexdigest() == expected_sha256(total)
    print(
        f"\ntraced peak {peak / MiB:.1f} MiB for {total // MiB} MiB "
        f"through a {window // MiB} MiB window"
    )
    assert peak < 3 * (window + DEFAULT_WRITE_LIMIT), f"peak {peak / MiB:.1f} MiB"


# --- resets and failures --------------------------------------------------------------------


async def test_a_reset_reaches_a_sender_blocked_on_credit() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        sender = asyncio.create_task(stream.send(bytes(4 * MiB)))  # far more than one window
        peer = await server.accept()
        await wait_until(lambda: stream.send_credit == 0)
        await peer.reset(ErrorCode.APPLICATION_BASE + 9, "no thanks")
        with pytest.raises(TunnelStreamReset) as info:
            await sender
        assert info.value.error_code == ErrorCode.APPLICATION_BASE + 9
        assert info.value.reason == "no thanks" and info.value.by_peer
        with pytest.raises(TunnelStreamReset):
            await peer.read()
        assert not peer.error.by_peer  # type: ignore[union-attr]


async def test_a_reset_after_the_peer_ended_keeps_the_complete_body() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        peer = await server.accept()
        await peer.send(b"whole answer")
        await peer.end()
        await peer.reset(ErrorCode.NO_ERROR, "did not read your body")
        await wait_until(lambda: stream.error is not None)
        assert await stream.read() == b"whole answer"
        assert await stream.read() == b""
        with pytest.raises(TunnelStreamReset):
            await stream.send(b"more body")


async def test_a_failing_handler_resets_its_stream_with_internal_error() -> None:
    async def broken(stream: TunnelStream) -> None:
        raise RuntimeError("bug")

    async with connected(broken) as (client, _server):
        stream = await client.open_stream({})
        with pytest.raises(TunnelStreamReset) as info:
            await stream.read()
        assert info.value.error_code == ErrorCode.INTERNAL_ERROR


async def test_leaving_a_stream_block_with_an_error_resets_it() -> None:
    async with connected() as (client, server):
        with pytest.raises(KeyError):
            async with await client.open_stream({}) as stream:
                raise KeyError("oops")
        peer = await server.accept()
        with pytest.raises(TunnelStreamReset) as info:
            await peer.read()
        assert info.value.error_code == ErrorCode.CANCEL
        assert stream.done


async def test_a_killed_transport_fails_every_stream_within_a_second() -> None:
    a, b = memory_pair()
    async with TunnelConnection(a, "client") as client, TunnelConnection(b, "server") as server:
        streams = [await client.open_stream({"i": i}) for i in range(5)]
        peers = [await server.accept() for _ in streams]
        blocked_send = asyncio.create_task(streams[0].send(bytes(4 * MiB)))
        blocked_read = asyncio.create_task(peers[1].read())
        accepting = asyncio.create_task(server.accept())
        await wait_until(lambda: streams[0].send_credit == 0)
        started = time.monotonic()
        await a.abort()
        async with asyncio.timeout(1):
            for task in (blocked_send, blocked_read, accepting):
                with pytest.raises(TunnelClosed):
                    await task
            await client.wait_closed()
            await server.wait_closed()
        assert time.monotonic() - started < 1
        assert isinstance(client.close_error, TunnelClosed)
        for stream in streams + peers:
            with pytest.raises(TunnelClosed):
                await stream.read()
        with pytest.raises(TunnelClosed):
            await client.open_stream({})


async def test_graceful_close_lets_open_streams_finish_and_refuses_new_ones() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        peer = await server.accept()
        closing = asyncio.create_task(server.close())
        await wait_until(lambda: client.peer_going_away)
        with pytest.raises(TunnelClosed, match="going away"):
            await client.open_stream({})
        await stream.send(b"last words")
        await stream.end()
        assert await peer.read() == b"last words"
        await peer.send(b"bye")
        await peer.end()
        assert [c async for c in stream] == [b"bye"]
        await closing
        await client.wait_closed()
        assert server.close_error is None and client.close_error is None


async def test_an_abort_tells_the_peer_why() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        await server.accept()
        reading = asyncio.create_task(stream.read())
        await server.abort("debug session dbg_1 revoked", code=ErrorCode.APPLICATION_BASE + 2)
        async with asyncio.timeout(2):
            with pytest.raises(TunnelClosed, match="dbg_1 revoked") as info:
                await reading
            await client.wait_closed()
        assert info.value.details["goaway_code"] == ErrorCode.APPLICATION_BASE + 2
        assert client.close_error is info.value


async def test_close_resets_streams_that_do_not_finish_in_time() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        await server.accept()
        await server.close(timeout=0.05)
        with pytest.raises((TunnelStreamReset, TunnelClosed)):
            await stream.read()


# --- the wire -------------------------------------------------------------------------------


async def test_keepalive_fails_a_connection_whose_peer_went_silent() -> None:
    a, _silent = memory_pair()
    conn = TunnelConnection(a, "client", ping_interval=0.05, ping_timeout=0.1)
    await conn.start()
    stream_task = asyncio.create_task(conn.open_stream({}))  # waits for a HELLO that never comes
    async with asyncio.timeout(2):
        await conn.wait_closed()
        with pytest.raises(TunnelClosed, match="keepalive"):
            await stream_task
    assert "keepalive" in str(conn.close_error)


async def _received_until_closed(transport: MemoryTransport) -> bytes:
    received = b""
    while True:
        try:
            received += await transport.recv()
        except TunnelClosed:
            return received


async def test_a_protocol_error_is_answered_with_goaway_and_fails_the_connection() -> None:
    a, b = memory_pair()
    async with TunnelConnection(a, "client") as conn:
        await b.send(b"\x00\x00\x04\x09" + bytes(5) + b"junk")  # unknown frame type 9
        async with asyncio.timeout(2):
            await conn.wait_closed()
        received = await _received_until_closed(b)
    frames = decode_frames(received)
    assert isinstance(frames[0], Hello)
    assert isinstance(frames[-1], GoAway) and frames[-1].code == ErrorCode.PROTOCOL_ERROR
    assert "protocol" in str(conn.close_error)


async def test_a_connection_aborted_before_it_started_still_tells_the_peer_why() -> None:
    """A tunnel whose session ended during its set-up is aborted unstarted: no stream was ever
    served, yet the peer gets the HELLO and a GOAWAY with the reason, not a bare close."""
    a, b = memory_pair()
    conn = TunnelConnection(a, "server", handler=echo)
    async with asyncio.timeout(2):
        await conn.abort("debug session dbg_1 revoked", code=ErrorCode.CANCEL)
        received = await _received_until_closed(b)
    frames = decode_frames(received)
    assert isinstance(frames[0], Hello)
    assert isinstance(frames[-1], GoAway) and frames[-1].code == ErrorCode.CANCEL
    assert "revoked" in frames[-1].reason
    assert conn.closed and not [f for f in frames if isinstance(f, Data)]


async def test_small_frames_share_messages_and_big_ones_are_cut_to_the_cap() -> None:
    a, b = memory_pair()
    peer = RawPeer(b)
    await peer.flush()
    async with TunnelConnection(a, "client", max_message_size=64 * 1024) as conn:
        while not conn.remote_settings.max_frame_size > 16 * 1024:
            await asyncio.sleep(0)  # the HELLO is on its way in
        await peer.receive()  # our HELLO
        for i in range(50):
            stream = await conn.open_stream({"i": i})
            await stream.send(b"x" * 10)
            await stream.end()
        events: list[object] = []
        while len([e for e in events if type(e).__name__ == "StreamEnded"]) < 50:
            events += await peer.receive()
        assert len(peer.messages) <= 3, "50 streams x 3 frames should share a few messages"

        peer.messages.clear()
        big = await conn.open_stream({})
        sender = asyncio.create_task(big.send(pattern(0, 512 * 1024)))
        got = 0
        while got < 512 * 1024:
            for event in await peer.receive():
                if type(event).__name__ == "DataReceived":
                    got += len(event.data)  # type: ignore[attr-defined]
                    peer.proto.acknowledge(event.stream_id, len(event.data))  # type: ignore[attr-defined]
            await peer.flush()
        await sender
        assert max(len(m) for m in peer.messages) <= 64 * 1024
        assert len(peer.messages) >= 8
        await peer.transport.close()


async def test_data_frames_use_the_large_frame_size() -> None:
    """With the peer's 256 KiB frames announced, a big send goes out in 256 KiB DATA frames."""
    a, b = memory_pair()
    peer = RawPeer(b)
    await peer.flush()
    async with TunnelConnection(a, "client") as conn:
        await peer.receive()
        stream = await conn.open_stream({})
        await stream.send(pattern(0, CHUNK * 2))
        raw = b""
        while len(raw) < CHUNK * 2:
            raw += await b.recv()
        sizes = [len(f.data) for f in decode_frames(raw) if isinstance(f, Data)]
        assert sizes[:2] == [CHUNK, CHUNK]
        await b.close()
