"""Frame encoding and the validating decoder."""

from __future__ import annotations

import pytest

from alien.protocol.errors import TunnelProtocolError
from alien.protocol.frames import (
    FLOOR_SETTINGS,
    HEADER_SIZE,
    MAX_REASON_BYTES,
    Data,
    End,
    ErrorCode,
    FrameDecoder,
    FrameType,
    GoAway,
    Hello,
    MetadataError,
    Open,
    Ping,
    Pong,
    Reset,
    Settings,
    WindowUpdate,
    decode_frames,
    decode_meta,
    encode_frame,
    encode_reason,
)

ALL_FRAMES = [
    Hello(Settings()),
    Hello(FLOOR_SETTINGS),
    Open(1, b'{"method":"GET"}'),
    Data(3, b"hello"),
    Data(5, b""),
    End(7),
    Reset(9, ErrorCode.CANCEL, "client went away"),
    Reset(9, 0x1234, ""),
    WindowUpdate(0, 1),
    WindowUpdate(11, 2**31 - 1),
    Ping(b"12345678"),
    Pong(b"\x00" * 8),
    GoAway(41, ErrorCode.NO_ERROR, "bye ✓"),
]


def raw(frame_type: int, stream_id: int, payload: bytes = b"", flags: int = 0) -> bytes:
    header = ((len(payload) << 8) | frame_type).to_bytes(4, "big") + bytes([flags])
    return header + stream_id.to_bytes(4, "big") + payload


def test_header_layout_is_length_type_flags_stream() -> None:
    encoded = encode_frame(Data(5, b"abc"))
    assert encoded == b"\x00\x00\x03" + b"\x02" + b"\x00" + b"\x00\x00\x00\x05" + b"abc"
    assert HEADER_SIZE == 9


def test_hello_layout() -> None:
    payload = encode_frame(Hello(Settings()))[HEADER_SIZE:]
    assert payload[:5] == b"ALTN\x01"
    assert len(payload) == 21


@pytest.mark.parametrize("frame", ALL_FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_round_trips(frame) -> None:
    assert decode_frames(encode_frame(frame)) == [frame]


def test_decoder_waits_for_whole_frames() -> None:
    data = b"".join(encode_frame(f) for f in ALL_FRAMES)
    decoder = FrameDecoder(max_frame_size=2**24 - 1)
    frames = []
    for byte in data:
        decoder.feed(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert frames == ALL_FRAMES
    assert decoder.buffered == 0


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=16384)
    header_only = ((16385 << 8) | FrameType.DATA).to_bytes(4, "big") + b"\0" + b"\0\0\0\1"
    decoder.feed(header_only)  # no payload yet: the length alone condemns it
    with pytest.raises(TunnelProtocolError) as info:
        decoder.next_frame()
    assert info.value.error_code == ErrorCode.FRAME_SIZE_ERROR


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (raw(0x9, 0), ErrorCode.PROTOCOL_ERROR, "unknown frame type"),
        (raw(0xFF, 1, b"x"), ErrorCode.PROTOCOL_ERROR, "unknown frame type"),
        (raw(FrameType.DATA, 1, b"x", flags=1), ErrorCode.PROTOCOL_ERROR, "flags"),
        (raw(FrameType.DATA, 2**31 + 1, b"x"), ErrorCode.PROTOCOL_ERROR, "reserved"),
        (raw(FrameType.DATA, 0, b"x"), ErrorCode.PROTOCOL_ERROR, "stream 0"),
        (raw(FrameType.OPEN, 0, b"{}"), ErrorCode.PROTOCOL_ERROR, "stream 0"),
        (raw(FrameType.PING, 1, b"12345678"), ErrorCode.PROTOCOL_ERROR, "belongs to stream 0"),
        (raw(FrameType.GOAWAY, 3, b"\0" * 8), ErrorCode.PROTOCOL_ERROR, "belongs to stream 0"),
        (raw(FrameType.PING, 0, b"1234567"), ErrorCode.FRAME_SIZE_ERROR, "expected 8"),
        (raw(FrameType.END, 1, b"x"), ErrorCode.FRAME_SIZE_ERROR, "expected 0"),
        (raw(FrameType.WINDOW_UPDATE, 1, b"\0\0\1"), ErrorCode.FRAME_SIZE_ERROR, "expected 4"),
        (raw(FrameType.WINDOW_UPDATE, 1, b"\0\0\0\0"), ErrorCode.PROTOCOL_ERROR, "increment"),
        (raw(FrameType.WINDOW_UPDATE, 0, b"\x80\0\0\0"), ErrorCode.PROTOCOL_ERROR, "increment"),
        (raw(FrameType.RESET, 1, b"\0\0"), ErrorCode.FRAME_SIZE_ERROR, "too short"),
        (raw(FrameType.RESET, 1, b"\0\0\0\0\xff"), ErrorCode.PROTOCOL_ERROR, "UTF-8"),
        (
            raw(FrameType.RESET, 1, b"\0" * 4 + b"x" * (MAX_REASON_BYTES + 1)),
            ErrorCode.FRAME_SIZE_ERROR,
            "too long",
        ),
        (raw(FrameType.GOAWAY, 0, b"\0" * 7), ErrorCode.FRAME_SIZE_ERROR, "too short"),
        (raw(FrameType.GOAWAY, 0, b"\x80" + b"\0" * 7), ErrorCode.PROTOCOL_ERROR, "reserved"),
        (raw(FrameType.HELLO, 0, b"XXXX" + b"\1" + b"\0" * 16), ErrorCode.PROTOCOL_ERROR, "magic"),
        (raw(FrameType.HELLO, 0, b"ALTN\2" + b"\0" * 16), ErrorCode.PROTOCOL_ERROR, "version"),
        (raw(FrameType.HELLO, 0, b"ALTN\1" + b"\0" * 16), ErrorCode.PROTOCOL_ERROR, "range"),
        (raw(FrameType.HELLO, 0, b"ALTN\1"), ErrorCode.FRAME_SIZE_ERROR, "expected 21"),
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes, code: ErrorCode, message: str) -> None:
    with pytest.raises(TunnelProtocolError, match=message) as info:
        decode_frames(data)
    assert info.value.error_code == code


@pytest.mark.parametrize(
    "settings",
    [
        {"max_frame_size": 1024},
        {"max_frame_size": 2**24},
        {"initial_window": 1000},
        {"connection_window": 2**31},
        {"max_concurrent_streams": -1},
    ],
)
def test_settings_out_of_range(settings) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Settings(**settings)


def test_reasons_are_cut_on_a_character_boundary() -> None:
    reason = "é" * MAX_REASON_BYTES
    encoded = encode_reason(reason)
    assert len(encoded) <= MAX_REASON_BYTES
    assert encoded.decode("utf-8") == "é" * (MAX_REASON_BYTES // 2)


class TestMetadata:
    def test_object(self) -> None:
        assert decode_meta(b'{"method":"GET","headers":[["a","b"]]}')["method"] == "GET"

    @pytest.mark.parametrize(
        "data",
        [b"", b"[1]", b'"x"', b"{", b"\xff", b'{"a":NaN}', b'{"a":Infinity}', b"[" * 100_000],
    )
    def test_anything_else_is_a_metadata_error(self, data: bytes) -> None:
        with pytest.raises(MetadataError):
            decode_meta(data)
