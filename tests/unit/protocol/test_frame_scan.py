"""The frame scanner: what a watching relay sees equals what a decoding end receives, however
the byte stream is cut into messages; garbage is refused before it could be forwarded."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.protocol.errors import TunnelProtocolError
from alien.protocol.frame_scan import FrameScanner, Payload
from alien.protocol.frames import (
    FLOOR_SETTINGS,
    MAX_FRAME_SIZE,
    Data,
    End,
    ErrorCode,
    Frame,
    FrameType,
    GoAway,
    Hello,
    Open,
    Ping,
    Pong,
    Reset,
    Settings,
    WindowUpdate,
    decode_frames,
    encode_frame,
)

stream_ids = st.integers(min_value=1, max_value=2**31 - 1)
reasons = st.text(max_size=40)
frames_strategy = st.one_of(
    st.builds(Hello, st.sampled_from([Settings(), FLOOR_SETTINGS])),
    st.builds(Open, stream_ids, st.binary(max_size=300)),
    st.builds(Data, stream_ids, st.binary(max_size=3000)),
    st.builds(End, stream_ids),
    st.builds(Reset, stream_ids, st.integers(0, 2**32 - 1), reasons),
    st.builds(WindowUpdate, st.integers(0, 2**31 - 1), st.integers(1, 2**31 - 1)),
    st.builds(Ping, st.binary(min_size=8, max_size=8)),
    st.builds(Pong, st.binary(min_size=8, max_size=8)),
    st.builds(GoAway, st.integers(0, 2**31 - 1), st.integers(0, 2**32 - 1), reasons),
)


Events = list[tuple[object, ...]]


def expected(frames: list[Frame]) -> Events:
    """What the scanner should report for ``frames``: DATA as (stream, bytes), the kept kinds
    as themselves, the rest nothing."""
    out: Events = []
    for frame in frames:
        if isinstance(frame, Data):
            if frame.data:
                out.append(("data", frame.stream_id, frame.data))
        elif isinstance(frame, Open | End | Reset | GoAway):
            out.append(("frame", frame))
    return out


def scanned(scanner: FrameScanner, pieces: list[bytes]) -> tuple[Events, list[bool]]:
    """The events, DATA as (stream, bytes), and ``at_boundary`` after each piece."""
    out: Events = []
    boundaries = []
    for piece in pieces:
        for event in scanner.feed(piece):
            if isinstance(event, Payload):
                out.append(("data", event.stream_id, bytes(event.data)))
            else:
                out.append(("frame", event))
        boundaries.append(scanner.at_boundary)
    return out, boundaries


@given(
    frames=st.lists(frames_strategy, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=10),
)
def test_what_goes_by_is_what_the_receiver_decodes(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(frame) for frame in frames)
    assert decode_frames(stream) == frames  # the receiving end's view
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in itertools.pairwise(points)]
    events, boundaries = scanned(FrameScanner(), pieces)
    assert _merged(events) == _merged(expected(frames))
    frame_ends = _frame_ends(frames)
    assert boundaries == [point in frame_ends for point in points[1:]]


def _merged(events: Events) -> Events:
    """DATA of one stream joined across frames and pieces (where the cuts fall differs)."""
    out: Events = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data" and out[-1][1] == event[1]:
            out[-1] = ("data", event[1], out[-1][2] + event[2])  # type: ignore[operator]
        else:
            out.append(event)
    return out


def _frame_ends(frames: list[Frame]) -> set[int]:
    ends, position = {0}, 0
    for frame in frames:
        position += len(encode_frame(frame))
        ends.add(position)
    return ends


def test_payload_bytes_are_views_of_the_message_not_copies() -> None:
    message = encode_frame(Data(3, b"x" * 1000))
    (event,) = list(FrameScanner().feed(message))
    assert isinstance(event, Payload)
    assert event.data.obj is message


def test_a_header_cut_in_two_is_read_across_messages() -> None:
    data = encode_frame(End(5)) + encode_frame(Reset(5, ErrorCode.CANCEL, "gone"))
    scanner = FrameScanner()
    assert list(scanner.feed(data[:4])) == []
    assert not scanner.at_boundary
    assert list(scanner.feed(data[4:9])) == [End(5)]
    assert scanner.at_boundary
    assert list(scanner.feed(data[9:13])) == []
    assert list(scanner.feed(data[13:])) == [Reset(5, ErrorCode.CANCEL, "gone")]
    assert scanner.at_boundary


def header(frame_type: int, stream_id: int, length: int, flags: int = 0) -> bytes:
    return (
        ((length << 8) | frame_type).to_bytes(4, "big")
        + bytes([flags])
        + stream_id.to_bytes(4, "big")
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (header(0x42, 1, 0), ErrorCode.PROTOCOL_ERROR),  # unknown type
        (header(FrameType.DATA, 1, 0, flags=1), ErrorCode.PROTOCOL_ERROR),
        (header(FrameType.DATA, 0, 0), ErrorCode.PROTOCOL_ERROR),  # DATA on stream 0
        (header(FrameType.PING, 3, 8), ErrorCode.PROTOCOL_ERROR),  # PING on a stream
        (header(FrameType.OPEN, 1, 300_000), ErrorCode.FRAME_SIZE_ERROR),  # OPEN too large
        (header(FrameType.WINDOW_UPDATE, 1, 3), ErrorCode.FRAME_SIZE_ERROR),
        (header(FrameType.RESET, 1, 2), ErrorCode.FRAME_SIZE_ERROR),
        # A reason longer than any end accepts: refused before its bytes are kept.
        (header(FrameType.RESET, 1, 4 + 1025), ErrorCode.FRAME_SIZE_ERROR),
        (header(FrameType.GOAWAY, 0, 8 + 1025), ErrorCode.FRAME_SIZE_ERROR),
        (header(FrameType.WINDOW_UPDATE, 1, 4) + b"\0\0\0\0", None),  # fine: not decoded here
        (header(FrameType.RESET, 1, 5) + b"\0\0\0\0\xff", ErrorCode.PROTOCOL_ERROR),  # not UTF-8
    ],
)
def test_what_is_not_the_protocol_is_refused_at_the_header(
    data: bytes, code: ErrorCode | None
) -> None:
    if code is None:
        list(FrameScanner().feed(data))
        return
    with pytest.raises(TunnelProtocolError) as caught:
        list(FrameScanner().feed(data))
    assert caught.value.error_code == code


def test_data_of_any_wire_size_streams_through_without_being_kept() -> None:
    scanner = FrameScanner()
    assert list(scanner.feed(header(FrameType.DATA, 1, MAX_FRAME_SIZE))) == []
    (event,) = list(scanner.feed(b"x" * 1000))
    assert isinstance(event, Payload) and len(event.data) == 1000
    assert not scanner.at_boundary


def test_a_message_of_tiny_frames_is_walked_one_event_at_a_time() -> None:
    """Legal but hostile: 512 KiB of one-byte DATA frames (any size shows it; tracemalloc makes
    each frame slow to walk). The events are made as the walk goes, never all at once (a list of
    them cost ~24 times the message, 12 MiB here, against the 64 KiB allowed)."""
    frame = encode_frame(Data(1, b"x"))
    message = frame * (512 * 1024 // len(frame))
    scanner = FrameScanner()
    tracemalloc.start()
    try:
        walked = sum(len(event.data) for event in scanner.feed(message))  # type: ignore[union-attr]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert walked == len(message) // len(frame)
    assert peak < 64 * 1024, peak
    assert scanner.at_boundary


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_bytes_give_events_or_a_protocol_error(pieces: list[bytes]) -> None:
    scanner = FrameScanner()
    try:
        for piece in pieces:
            list(scanner.feed(piece))
    except TunnelProtocolError:
        pass


@pytest.mark.parametrize(
    ("sender", "ids", "refused"),
    [
        ("client", [1, 3, 7], None),
        ("server", [2, 4, 10], None),
        ("client", [1, 3, 3], "reuses stream id 3"),
        ("client", [5, 3], "reuses stream id 3"),
        ("client", [2], "an id the sender may not open"),
        ("server", [1], "an id the sender may not open"),
    ],
)
def test_a_sender_opens_only_new_ids_of_its_own(
    sender: str, ids: list[int], refused: str | None
) -> None:
    """What an observer keys by stream id cannot be replaced by an OPEN reusing an id: the
    scanner refuses it before the bytes are forwarded (and before the observer sees it)."""
    scanner = FrameScanner(sender=sender)  # type: ignore[arg-type]
    data = b"".join(encode_frame(Open(stream_id, b"{}")) for stream_id in ids)
    if refused is None:
        assert [event.stream_id for event in scanner.feed(data)] == ids  # type: ignore[union-attr]
        return
    with pytest.raises(TunnelProtocolError, match=refused):
        list(scanner.feed(data))
