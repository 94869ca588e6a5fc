"""The client-side WebSocket frame reader: whatever the socket's cuts, the same frames come out;
a frame a server may not send is a ``WebSocketError``, never another exception."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alien.protocol import websocket as ws

MAX_FRAME = 4 * 1024 * 1024


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, first_extra: int = 0) -> bytes:
    first = (0x80 if fin else 0) | opcode | first_extra
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


def feed(reader: ws.FrameReader, data: bytes, cuts: list[int]) -> list[ws.Event]:
    """Deliver ``data`` the way a socket would: pieces no larger than the buffer offered."""
    events: list[ws.Event] = []
    pos, sizes = 0, iter(cuts)
    while pos < len(data):
        buffer = reader.buffer()
        assert len(buffer) > 0
        n = min(len(buffer), len(data) - pos, next(sizes, len(data)) or 1)
        buffer[:n] = data[pos : pos + n]
        pos += n
        events += reader.advance(n)
    return events


sizes = st.sampled_from([0, 1, 125, 126, 65535, ws.DIRECT_THRESHOLD, 300_000, 1_100_000])
frames = st.lists(
    st.tuples(st.sampled_from([ws.Opcode.BINARY, ws.Opcode.CONTINUATION, ws.Opcode.PING]), sizes),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(frames, st.lists(st.integers(min_value=1, max_value=400_000), max_size=40))
def test_any_cut_of_the_stream_gives_the_same_frames(
    shape: list[tuple[ws.Opcode, int]], cuts: list[int]
) -> None:
    sent: list[tuple[ws.Opcode, bytes]] = []
    for i, (opcode, size) in enumerate(shape):
        size = min(size, 125) if opcode is ws.Opcode.PING else size
        sent.append((opcode, bytes([i % 251]) * size))
    stream = b"".join(server_frame(opcode, payload) for opcode, payload in sent)
    events = feed(ws.FrameReader(MAX_FRAME), stream, cuts)
    expected = [ws.Control(op, p) if op is ws.Opcode.PING else ws.Data(p) for op, p in sent]
    assert events == expected


def test_control_frames_and_the_close_handshake() -> None:
    reader = ws.FrameReader(MAX_FRAME)
    stream = server_frame(ws.Opcode.PONG, b"x") + server_frame(
        ws.Opcode.CLOSE, ws.close_payload(1001, "bye")
    )
    assert feed(reader, stream + server_frame(ws.Opcode.BINARY, b"after"), []) == [
        ws.Control(ws.Opcode.PONG, b"x"),
        ws.Close(1001, "bye"),
    ]
    assert reader.closed
    assert feed(ws.FrameReader(MAX_FRAME), server_frame(ws.Opcode.CLOSE, b""), []) == [
        ws.Close(None, "")
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (server_frame(ws.Opcode.TEXT, b"hi"), "text"),
        (bytes([0x82, 0x80 | 2]) + b"mask" + b"hi", "masked"),
        (server_frame(ws.Opcode.BINARY, b"x", first_extra=0x40), "reserved"),
        (server_frame(0x3, b""), "opcode"),
        (server_frame(ws.Opcode.PING, b"x" * 126), "control"),
        (server_frame(ws.Opcode.PING, b"x", fin=False), "control"),
        (server_frame(ws.Opcode.CLOSE, b"\x03"), "one-byte"),
        (server_frame(ws.Opcode.CLOSE, b"\x03\xe8\xff"), "UTF-8"),
        (struct.pack("!BBQ", 0x82, 127, MAX_FRAME + 1), "limit"),
    ],
)
def test_what_a_server_may_not_send_is_refused(frame: bytes, message: str) -> None:
    with pytest.raises(ws.WebSocketError, match=message):
        feed(ws.FrameReader(MAX_FRAME), frame, [])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_frames_or_a_websocket_error(data: bytes) -> None:
    try:
        events = feed(ws.FrameReader(1024), data, [])
    except ws.WebSocketError:
        return
    assert all(isinstance(event, ws.Data | ws.Control | ws.Close) for event in events)


def test_client_frame_headers_are_masked_and_sized() -> None:
    mask = b"\x01\x02\x03\x04"
    assert ws.frame_header(ws.Opcode.BINARY, 5, mask) == b"\x82\x85" + mask
    assert ws.frame_header(ws.Opcode.BINARY, 300, mask) == b"\x82\xfe\x01\x2c" + mask
    assert (
        ws.frame_header(ws.Opcode.CLOSE, 70_000, mask)
        == b"\x88\xff" + (70_000).to_bytes(8, "big") + mask
    )


def test_the_accept_value_of_the_rfc_example() -> None:
    assert ws.accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@given(st.binary(max_size=3 * 8 * 1024), st.binary(min_size=4, max_size=4))
def test_masking_in_python_and_in_c_agree(payload: bytes, mask: bytes) -> None:
    from websockets.frames import apply_mask

    from alien.tunnel.websocket_client import _masked

    assert _masked(payload, mask) == apply_mask(payload, mask)
    assert _masked(memoryview(payload), mask) == apply_mask(payload, mask)
