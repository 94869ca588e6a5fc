"""The client side of a WebSocket (RFC 6455) as the tunnel uses it: binary frames, no extensions.

Why our own: the ``websockets`` library copies every received byte three times (into its stream
buffer, out of it as a frame, into the joined message) — about 0.38 ms of CPU per MiB, a quarter
of what ``alien debug`` spends per MiB of a download. The tunnel does not need messages at all
(its byte stream may be cut anywhere, see :mod:`alien.protocol.tunnel`), so this reader hands
out each frame's payload as it completes, and lets the socket fill the reader's buffers
directly: :meth:`FrameReader.buffer` says where the next received bytes go. A large payload is
received into a buffer kept for the connection's life and handed out as ``bytes`` — one copy.
(Receiving it into a fresh ``bytearray`` handed out as is costs more: fresh memory is zeroed
and faulted in page by page, ~0.2 ms per MiB on our VMs against ~0.04 ms for the copy.)

Sans-I/O like the rest of :mod:`alien.protocol`: the caller moves bytes (an
``asyncio.BufferedProtocol`` in :mod:`alien.tunnel.websocket_client`); this module parses,
checks and builds frame headers. Masking the client's payloads is the caller's (it needs the
C implementation the I/O layer imports). Untrusted input: a server frame that is masked, uses
reserved bits, is text, is a fragmented or oversized control frame, or exceeds ``max_frame``
raises :class:`WebSocketError`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SCRATCH_SIZE = 256 * 1024
"""Bytes received at once while between payloads (headers, small frames)."""
DIRECT_THRESHOLD = 64 * 1024
"""A payload at least this large that is not yet complete is received into its own buffer."""
MAX_CONTROL_PAYLOAD = 125


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WebSocketError(Exception):
    """The peer broke the protocol (the connection must be failed, close code 1002)."""


@dataclass(frozen=True)
class Data:
    """A binary or continuation frame's payload (message boundaries do not matter here)."""

    payload: bytes


@dataclass(frozen=True)
class Control:
    """A PING (to be answered with a PONG of the same payload) or a PONG."""

    opcode: Opcode
    payload: bytes


@dataclass(frozen=True)
class Close:
    code: int | None
    reason: str


Event = Data | Control | Close


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame_header(opcode: Opcode, length: int, mask: bytes) -> bytes:
    """The header of a final, masked client frame of ``length`` payload bytes."""
    first = 0x80 | opcode
    if length < 126:
        return struct.pack("!BB", first, 0x80 | length) + mask
    if length < 1 << 16:
        return struct.pack("!BBH", first, 0x80 | 126, length) + mask
    return struct.pack("!BBQ", first, 0x80 | 127, length) + mask


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[: MAX_CONTROL_PAYLOAD - 2]


class FrameReader:
    """Parses the frames a server sends; see the module doc for the buffer protocol.

    Call :meth:`buffer`, put up to its length of received bytes at its start, then call
    :meth:`advance` with how many: it answers the frames completed."""

    def __init__(self, max_frame: int) -> None:
        self._max_frame = max_frame
        self._scratch = bytearray(SCRATCH_SIZE)
        self._view = memoryview(self._scratch)  # never resized: the view stays valid
        self._start = 0  # unparsed bytes are _scratch[_start:_end]
        self._end = 0
        self._large = bytearray()  # where a large payload is received (grown to the largest)
        self._length: int | None = None  # the large payload being received, if any
        self._filled = 0
        self._opcode = Opcode.BINARY
        self.closed = False

    def buffer(self) -> memoryview:
        if self._length is not None:
            return memoryview(self._large)[self._filled : self._length]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._scratch) - self._end < DIRECT_THRESHOLD:  # compact
            pending = self._end - self._start
            self._view[:pending] = self._view[self._start : self._end]
            self._start, self._end = 0, pending
        return self._view[self._end :]

    def advance(self, n: int) -> list[Event]:
        if self._length is not None:
            self._filled += n
            if self._filled < self._length:
                return []
            with memoryview(self._large) as view:
                payload = bytes(view[: self._length])
            self._length = None
            return [self._event(self._opcode, payload)]
        self._end += n
        events: list[Event] = []
        while not self.closed and (event := self._next()) is not None:
            events.append(event)
        return events

    def _next(self) -> Event | None:
        """The next frame's event, or ``None`` until more bytes arrive."""
        available = self._end - self._start
        if available < 2:
            return None
        first, second = self._scratch[self._start], self._scratch[self._start + 1]
        if first & 0x70:
            raise WebSocketError("a frame uses reserved bits (no extension was agreed)")
        if second & 0x80:
            raise WebSocketError("the server sent a masked frame")
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError:
            raise WebSocketError(f"unknown opcode {first & 0x0F:#x}") from None
        length, header = second & 0x7F, 2
        if length == 126:
            header = 4
            if available < header:
                return None
            length = struct.unpack_from("!H", self._scratch, self._start + 2)[0]
        elif length == 127:
            header = 10
            if available < header:
                return None
            length = struct.unpack_from("!Q", self._scratch, self._start + 2)[0]
        self._check(opcode, fin=bool(first & 0x80), length=length)
        body = self._start + header
        if self._end - body >= length:
            self._start = body + length
            return self._event(opcode, bytes(self._view[body : body + length]))
        if length >= DIRECT_THRESHOLD:
            have = self._end - body
            if len(self._large) < length:
                self._large = bytearray(length)
            self._large[:have] = self._view[body : self._end]
            self._length, self._filled, self._opcode = length, have, opcode
            self._start = self._end = 0
        return None

    def _check(self, opcode: Opcode, *, fin: bool, length: int) -> None:
        if opcode is Opcode.TEXT:
            raise WebSocketError("the server sent a text frame; the tunnel speaks binary only")
        if opcode >= Opcode.CLOSE and (not fin or length > MAX_CONTROL_PAYLOAD):
            raise WebSocketError("a control frame is fragmented or longer than 125 bytes")
        if length > self._max_frame:
            raise WebSocketError(f"a frame of {length} bytes is over the {self._max_frame} limit")

    def _event(self, opcode: Opcode, payload: bytes) -> Event:
        if opcode in (Opcode.PING, Opcode.PONG):
            return Control(opcode, payload)
        if opcode is Opcode.CLOSE:
            self.closed = True
            return _close(payload)
        return Data(payload)


def _close(payload: bytes) -> Close:
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        raise WebSocketError("a close frame with a one-byte payload")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketError("a close reason that is not UTF-8") from None
    return Close(struct.unpack_from("!H", payload)[0], reason)
