"""What the tunnel does to stay cheap per byte and per request, and that it stays correct.

DATA payloads are not copied until the writer joins them into messages (so a mutable buffer
must still be copied when queued), received messages are parsed in place, and a request
without a body leaves as OPEN and END together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from alien.protocol.errors import TunnelError
from alien.protocol.frames import Settings
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse
from alien.protocol.tunnel import Connection, DataReceived, StreamEnded
from alien.tunnel import TunnelStream
from alien.tunnel.connection import _messages
from alien.tunnel.http import TunnelUpstream, serve_http_stream
from alien.tunnel.http_heads import encode_response_head
from tunnel.tunnel_support import MiB, connected, generate, hash_body, pattern, wait_until


def _pair() -> tuple[Connection, Connection]:
    client, server = Connection("client"), Connection("server")
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server


def test_a_mutable_buffer_changed_after_send_data_does_not_change_the_wire() -> None:
    client, server = _pair()
    stream = client.open_stream({})
    buffer = bytearray(b"before")
    assert client.send_data(stream, buffer) == 6
    buffer[:] = b"AFTER!"
    events = server.receive_data(client.data_to_send())
    assert [e.data for e in events if isinstance(e, DataReceived)] == [b"before"]


def test_frames_split_across_messages_are_parsed_in_place_and_whole() -> None:
    """Every cut of the byte stream (also inside headers) yields the same frames."""
    client, _ = _pair()
    stream = client.open_stream({})
    payload = pattern(0, 100_000)
    client.send_data(stream, payload)
    client.end_stream(stream)
    wire = client.data_to_send()
    for cut in (1, 5, 9, 10, 4096, 65_545, len(wire) - 1):
        receiver = Connection("server")
        receiver.receive_data(Connection("client").data_to_send())  # its HELLO
        events = receiver.receive_data(wire[:cut]) + receiver.receive_data(wire[cut:])
        assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == payload
        assert any(isinstance(e, StreamEnded) for e in events)


def test_messages_are_regrouped_to_the_size_and_keep_every_byte() -> None:
    buffers: list[bytes | memoryview] = [b"ab", memoryview(b"cdefgh"), b"", b"ijk"]
    messages = list(_messages(buffers, 4))
    assert b"".join(messages) == b"abcdefghijk"
    assert all(type(m) is bytes and 0 < len(m) <= 4 for m in messages)


def test_messages_are_cut_between_frames_so_the_receiver_parses_them_in_place() -> None:
    client, server = _pair()
    stream = client.open_stream({})
    payloads = [pattern(n, size) for n, size in enumerate((100, 70_000, 5, 70_000, 1, 140_000))]
    sent = b"".join(payload[: client.send_data(stream, payload)] for payload in payloads)
    client.end_stream(stream)
    buffers = client.buffers_to_send()
    wire = b"".join(buffers)
    messages = list(_messages(buffers, 150_000))
    assert b"".join(messages) == wire and all(len(m) <= 150_000 for m in messages)
    assert len(messages) > 1
    received = []
    for message in messages:
        received += server.receive_data(message)
        assert server._decoder.buffered == 0  # a whole number of frames: nothing carried over
    data = b"".join(e.data for e in received if isinstance(e, DataReceived))
    assert data == sent


async def test_a_request_without_a_body_arrives_already_ended() -> None:
    ended_on_arrival: list[bool] = []

    class Echo:
        """Answers with the method and how many body bytes it read."""

        async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
            size, _ = await hash_body(body)
            return UpstreamResponse.from_bytes(200, [], f"{head.method} {size}".encode())

    async def handler(stream: TunnelStream) -> None:
        ended_on_arrival.append(stream.remote_ended)
        await serve_http_stream(stream, Echo())

    async with connected(handler) as (client, _):
        upstream = TunnelUpstream(client)
        for method, size in (("GET", 0), ("DELETE", 0), ("POST", 3 * 256 * 1024)):
            headers = [("host", "h")] + ([("content-length", str(size))] if size else [])
            response = await upstream.send(
                RequestHead.create(method, "/k", headers), generate(size)
            )
            assert b"".join([c async for c in response.body]) == f"{method} {size}".encode()
            await response.aclose()
    # A GET or DELETE without a length is ended with its OPEN (the far side can answer at once);
    # the POST's body still arrives whole.
    assert ended_on_arrival[:2] == [True, True]


async def test_bulk_with_wide_windows_arrives_whole() -> None:
    size = 20 * MiB

    class Source:
        async def send(self, head: RequestHead, body: object) -> UpstreamResponse:
            headers = [("content-length", str(size))]
            return UpstreamResponse(head=ResponseHead.create(200, headers), body=generate(size))

    async def handler(stream: TunnelStream) -> None:
        await serve_http_stream(stream, Source())

    wide = Settings(initial_window=8 * MiB, connection_window=32 * MiB)
    async with connected(handler, settings=wide) as (client, _):
        response = await TunnelUpstream(client).send(
            RequestHead.create("GET", "/big", [("host", "h")]), generate(0)
        )
        received, digest = await asyncio.wait_for(hash_body(response.body), 30)
        await response.aclose()
    _, expected = await hash_body(generate(size))
    assert (received, digest) == (size, expected)


async def test_a_whole_response_lets_the_request_end_before_the_stream_is_closed() -> None:
    """A CONNECT-like exchange: the far side answers and ends first, the client's last bytes
    (its EOF) come a moment later. Closing the response must not cut them off: the far side
    sees the request end, not a reset (which the audit trail would record as a failure)."""
    seen: list[object] = []

    async def handler(stream: TunnelStream) -> None:
        await stream.send(encode_response_head(ResponseHead.create(200, [])))
        await stream.send(b"answer")
        await stream.end()
        try:
            seen.append(b"".join([chunk async for chunk in stream]))
        except TunnelError as exc:
            seen.append(exc)

    async def late_body() -> AsyncIterator[bytes]:
        yield b"hello"
        await asyncio.sleep(0.05)  # the client's EOF, behind the answer
        yield b" bye"

    async with connected(handler) as (client, _):
        response = await TunnelUpstream(client).send(
            RequestHead.create("CONNECT", "h:443", [("host", "h:443")]), late_body()
        )
        assert b"".join([chunk async for chunk in response.body]) == b"answer"
        await response.aclose()
        await wait_until(lambda: seen)
    assert seen == [b"hello bye"]
