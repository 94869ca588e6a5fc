"""Tunnel frames: encoding, and a sans-I/O decoder that validates untrusted bytes.

The wire format itself is specified in :mod:`alien.protocol.tunnel` (one place to read it); this
module turns frames into bytes and bytes into frames. The decoder checks everything that can be
checked without connection state (header fields, payload sizes, value ranges) and raises
:class:`TunnelProtocolError` — and nothing else — for any malformed input. It checks a frame's
header before its payload has arrived, so an oversize length is refused without buffering it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from alien.protocol.errors import TunnelProtocolError

HEADER = struct.Struct(">IBI")
"""length (24 bits) and type (8 bits) packed in one u32, then flags (u8), then stream id (u32)."""
HEADER_SIZE = HEADER.size  # 9

MAGIC = b"ALTN"
VERSION = 1

MAX_STREAM_ID = 2**31 - 1
MAX_WINDOW = 2**31 - 1
MIN_FRAME_SIZE = 16 * 1024
MAX_FRAME_SIZE = 2**24 - 1
MIN_WINDOW = 64 * 1024
MAX_REASON_BYTES = 1024
PING_SIZE = 8


class FrameType(IntEnum):
    HELLO = 0x0
    OPEN = 0x1
    DATA = 0x2
    END = 0x3
    RESET = 0x4
    WINDOW_UPDATE = 0x5
    PING = 0x6
    PONG = 0x7
    GOAWAY = 0x8


class ErrorCode(IntEnum):
    """Codes carried by RESET and GOAWAY. Values from ``APPLICATION_BASE`` up are the app's."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_CLOSED = 0x4
    FRAME_SIZE_ERROR = 0x5
    REFUSED_STREAM = 0x6
    CANCEL = 0x7
    INVALID_METADATA = 0x8
    APPLICATION_BASE = 0x100


def protocol_error(message: str, code: ErrorCode = ErrorCode.PROTOCOL_ERROR) -> TunnelProtocolError:
    return TunnelProtocolError(message, error_code=int(code))


@dataclass(frozen=True)
class Settings:
    """Limits a side announces in its HELLO: what it is willing to *receive*.

    Until a side has the peer's HELLO it assumes :data:`FLOOR_SETTINGS`; announced values may
    only raise those floors, so nothing sent before the HELLO arrived can break a limit the peer
    announces later. ``max_concurrent_streams`` is the exception (it may be lower than the floor):
    streams beyond it are refused one by one with ``REFUSED_STREAM``, never a connection error.
    """

    max_frame_size: int = 256 * 1024
    initial_window: int = 1024 * 1024
    connection_window: int = 16 * 1024 * 1024
    max_concurrent_streams: int = 128

    _FORMAT: ClassVar[struct.Struct] = struct.Struct(">4sBIIII")

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why these settings are out of range, or ``None``."""
        checks = [
            (MIN_FRAME_SIZE <= self.max_frame_size <= MAX_FRAME_SIZE, "max_frame_size"),
            (MIN_WINDOW <= self.initial_window <= MAX_WINDOW, "initial_window"),
            (MIN_WINDOW <= self.connection_window <= MAX_WINDOW, "connection_window"),
            (0 <= self.max_concurrent_streams <= MAX_STREAM_ID, "max_concurrent_streams"),
        ]
        return next((f"{name} out of range" for ok, name in checks if not ok), None)

    def encode(self) -> bytes:
        return self._FORMAT.pack(
            MAGIC,
            VERSION,
            self.max_frame_size,
            self.initial_window,
            self.connection_window,
            self.max_concurrent_streams,
        )


FLOOR_SETTINGS = Settings(
    max_frame_size=MIN_FRAME_SIZE,
    initial_window=MIN_WINDOW,
    connection_window=MIN_WINDOW,
    max_concurrent_streams=100,
)


# --- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    settings: Settings
    stream_id: int = 0
    TYPE: ClassVar[FrameType] = FrameType.HELLO

    def payload(self) -> bytes:
        return self.settings.encode()


@dataclass(frozen=True)
class Open:
    """A new stream; ``meta`` is the raw JSON object (decoded by :func:`decode_meta`)."""

    stream_id: int
    meta: bytes
    TYPE: ClassVar[FrameType] = FrameType.OPEN

    def payload(self) -> bytes:
        return self.meta


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    TYPE: ClassVar[FrameType] = FrameType.DATA

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class End:
    stream_id: int
    TYPE: ClassVar[FrameType] = FrameType.END

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class Reset:
    stream_id: int
    code: int
    reason: str = ""
    TYPE: ClassVar[FrameType] = FrameType.RESET

    def payload(self) -> bytes:
        return self.code.to_bytes(4, "big") + encode_reason(self.reason)


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    increment: int
    TYPE: ClassVar[FrameType] = FrameType.WINDOW_UPDATE

    def payload(self) -> bytes:
        return self.increment.to_bytes(4, "big")


@dataclass(frozen=True)
class Ping:
    data: bytes
    stream_id: int = 0
    TYPE: ClassVar[FrameType] = FrameType.PING

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Pong:
    data: bytes
    stream_id: int = 0
    TYPE: ClassVar[FrameType] = FrameType.PONG

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    code: int
    reason: str = ""
    stream_id: int = 0
    TYPE: ClassVar[FrameType] = FrameType.GOAWAY

    def payload(self) -> bytes:
        head = self.last_stream_id.to_bytes(4, "big") + self.code.to_bytes(4, "big")
        return head + encode_reason(self.reason)


Frame = Hello | Open | Data | End | Reset | WindowUpdate | Ping | Pong | GoAway


def encode_reason(reason: str) -> bytes:
    """UTF-8, cut to :data:`MAX_REASON_BYTES` on a character boundary."""
    raw = reason.encode("utf-8", errors="replace")
    if len(raw) <= MAX_REASON_BYTES:
        return raw
    return raw[:MAX_REASON_BYTES].decode("utf-8", errors="ignore").encode("utf-8")


def frame_header(frame_type: FrameType, stream_id: int, length: int) -> bytes:
    return HEADER.pack((length << 8) | frame_type, 0, stream_id)


def encode_frame(frame: Frame) -> bytes:
    payload = frame.payload()
    return frame_header(frame.TYPE, frame.stream_id, len(payload)) + payload


def encode_meta(meta: dict[str, Any]) -> bytes:
    """Compact JSON for an OPEN frame. Raises ``TypeError``/``ValueError`` if not encodable."""
    if not isinstance(meta, dict):
        raise TypeError("stream metadata must be a dict")
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class MetadataError(ValueError):
    """OPEN metadata that is not a JSON object; the stream is reset, the connection lives on."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_meta(raw: bytes) -> dict[str, Any]:
    """The JSON object of an OPEN frame; raises :class:`MetadataError` for anything else."""
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MetadataError(f"stream metadata is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(meta, dict):
        raise MetadataError("stream metadata must be a JSON object")
    return meta


# --- decoding ---------------------------------------------------------------------------------

_CONNECTION_TYPES = frozenset({FrameType.HELLO, FrameType.PING, FrameType.PONG, FrameType.GOAWAY})
_STREAM_TYPES = frozenset({FrameType.OPEN, FrameType.DATA, FrameType.END, FrameType.RESET})
_FIXED_SIZES = {
    FrameType.HELLO: Settings._FORMAT.size,
    FrameType.END: 0,
    FrameType.WINDOW_UPDATE: 4,
    FrameType.PING: PING_SIZE,
    FrameType.PONG: PING_SIZE,
}
_MIN_SIZES = {FrameType.RESET: 4, FrameType.GOAWAY: 8}
_MAX_SIZES = {FrameType.RESET: 4 + MAX_REASON_BYTES, FrameType.GOAWAY: 8 + MAX_REASON_BYTES}
"""Refused by their header, so no receiver buffers a reason it would refuse once whole."""


def check_header(frame_type: int, flags: int, stream_id: int, length: int, limit: int) -> None:
    """Refuse a frame header that breaks the wire format (``limit``: the largest payload)."""
    if frame_type not in FrameType._value2member_map_:
        raise protocol_error(f"unknown frame type 0x{frame_type:02x}")
    kind = FrameType(frame_type)
    if length > limit:
        raise protocol_error(
            f"{kind.name} frame of {length} bytes exceeds the {limit}-byte limit",
            ErrorCode.FRAME_SIZE_ERROR,
        )
    if flags:
        raise protocol_error(f"{kind.name} frame with unknown flags 0x{flags:02x}")
    if stream_id > MAX_STREAM_ID:
        raise protocol_error("stream id uses the reserved bit")
    if kind in _CONNECTION_TYPES and stream_id != 0:
        raise protocol_error(f"{kind.name} frame on stream {stream_id}; it belongs to stream 0")
    if kind in _STREAM_TYPES and stream_id == 0:
        raise protocol_error(f"{kind.name} frame on stream 0; it needs a stream")
    fixed = _FIXED_SIZES.get(kind)
    if fixed is not None and length != fixed:
        raise protocol_error(
            f"{kind.name} frame of {length} bytes, expected {fixed}", ErrorCode.FRAME_SIZE_ERROR
        )
    if length < _MIN_SIZES.get(kind, 0):
        raise protocol_error(f"{kind.name} frame too short", ErrorCode.FRAME_SIZE_ERROR)
    if length > _MAX_SIZES.get(kind, limit):
        raise protocol_error(
            f"{kind.name} frame of {length} bytes: its reason text is too long",
            ErrorCode.FRAME_SIZE_ERROR,
        )


def _decode_reason(raw: bytes) -> str:
    if len(raw) > MAX_REASON_BYTES:
        raise protocol_error("reason text too long", ErrorCode.FRAME_SIZE_ERROR)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise protocol_error("reason text is not UTF-8") from None


def _decode_hello(payload: bytes) -> Hello:
    magic, version, frame_size, window, conn_window, streams = Settings._FORMAT.unpack(payload)
    if magic != MAGIC:
        raise protocol_error("not an alien tunnel (bad HELLO magic)")
    if version != VERSION:
        raise protocol_error(f"unsupported tunnel protocol version {version}")
    try:
        return Hello(Settings(frame_size, window, conn_window, streams))
    except ValueError as exc:
        raise protocol_error(f"HELLO {exc}") from None


def decode_payload(kind: FrameType, stream_id: int, payload: bytes) -> Frame:
    """The frame a checked header and its whole payload make (the payload is validated)."""
    if kind is FrameType.DATA:
        return Data(stream_id, payload)
    if kind is FrameType.OPEN:
        return Open(stream_id, payload)
    if kind is FrameType.END:
        return End(stream_id)
    if kind is FrameType.WINDOW_UPDATE:
        increment = int.from_bytes(payload, "big")
        if not 1 <= increment <= MAX_WINDOW:
            raise protocol_error(f"WINDOW_UPDATE increment {increment} out of range")
        return WindowUpdate(stream_id, increment)
    if kind is FrameType.RESET:
        return Reset(stream_id, int.from_bytes(payload[:4], "big"), _decode_reason(payload[4:]))
    if kind is FrameType.PING:
        return Ping(payload)
    if kind is FrameType.PONG:
        return Pong(payload)
    if kind is FrameType.GOAWAY:
        last = int.from_bytes(payload[:4], "big")
        if last > MAX_STREAM_ID:
            raise protocol_error("GOAWAY last stream id uses the reserved bit")
        return GoAway(last, int.from_bytes(payload[4:8], "big"), _decode_reason(payload[8:]))
    return _decode_hello(payload)


class FrameDecoder:
    """Buffers received bytes and yields whole, validated frames one at a time.

    Pulling one frame at a time (rather than parsing a whole chunk up front) lets the connection
    stop at exactly the first bad frame. Memory is bounded by one frame plus the caller's chunk.
    """

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._buffer: bytes | bytearray = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos == len(self._buffer):  # nothing left over: read the frames in place
            self._buffer, self._pos = bytes(data), 0  # (no copy of an immutable ``bytes``)
            return
        if not isinstance(self._buffer, bytearray):
            self._buffer = bytearray(memoryview(self._buffer)[self._pos :])
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer) - self._pos

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` until more bytes arrive."""
        buffer, pos = self._buffer, self._pos
        if len(buffer) - pos < HEADER_SIZE:
            self._compact()
            return None
        length_type, flags, stream_id = HEADER.unpack_from(buffer, pos)
        length, frame_type = length_type >> 8, length_type & 0xFF
        check_header(frame_type, flags, stream_id, length, self.max_frame_size)
        end = pos + HEADER_SIZE + length
        if len(buffer) < end:
            self._compact()
            return None
        with memoryview(buffer) as view:  # one copy, and released before the buffer is resized
            payload = bytes(view[pos + HEADER_SIZE : end])
        self._pos = end
        return decode_payload(FrameType(frame_type), stream_id, payload)

    def _compact(self) -> None:
        if not self._pos:
            return
        if isinstance(self._buffer, bytearray):
            del self._buffer[: self._pos]
        else:  # keep only the start of the unfinished frame, not the whole message
            self._buffer = bytearray(memoryview(self._buffer)[self._pos :])
        self._pos = 0


def decode_frames(data: bytes, max_frame_size: int = MAX_FRAME_SIZE) -> list[Frame]:
    """Every complete frame in ``data`` (a convenience for tools and tests)."""
    decoder = FrameDecoder(max_frame_size)
    decoder.feed(data)
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames
