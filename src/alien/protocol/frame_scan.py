"""Following a tunnel's frames as they go by, without decoding them: what a relay that only
watches needs (the manager splicing a debug session's CLI to the deployment's agent).

:class:`~alien.protocol.frames.FrameDecoder` turns bytes into frames and copies every payload
once; a relay that forwards the bytes unchanged needs neither. :class:`FrameScanner` walks the
same byte stream, checks every frame header as the decoder does (so what is not the tunnel
protocol is caught before it is forwarded), and reports, in order:

* :class:`~alien.protocol.frames.Open` — a new stream, with its metadata whole (bounded);
* :class:`Payload` — DATA bytes of a stream as they pass, as views of the bytes fed (never
  copied: a frame cut across two messages comes out in two pieces);
* :class:`~alien.protocol.frames.End`, :class:`~alien.protocol.frames.Reset`,
  :class:`~alien.protocol.frames.GoAway` — decoded and validated (their payloads are small).

HELLO, WINDOW_UPDATE, PING and PONG are checked by their header and skipped: flow control and
keepalive are the two ends' business (``hello_seen`` tells whether the handshake went by).
Stream states and credit are not checked here either — the end receiving the frames checks
them, and breaks the connection. Stream ids of OPENs are (given the ``sender``'s side): an
observer keys what it follows by stream id, so an OPEN reusing the id of a stream still running
would let the sender replace what the observer recorded of it (the audit of a request the other
end is still serving) before the receiving end refuses the reuse. ``at_boundary``
says whether the bytes fed so far end exactly between two frames: where a frame of the relay's
own (a GOAWAY saying why it ends the tunnel) can be put in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from alien.protocol.frames import (
    HEADER,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    End,
    ErrorCode,
    FrameType,
    GoAway,
    Open,
    Reset,
    Settings,
    check_header,
    decode_payload,
    protocol_error,
)

DEFAULT_MAX_OPEN = Settings().max_frame_size
"""The largest OPEN metadata kept by default: the largest frame any of our ends accepts."""

_KEPT = frozenset({FrameType.OPEN, FrameType.RESET, FrameType.GOAWAY})


@dataclass(frozen=True, slots=True)
class Payload:
    """DATA bytes of ``stream_id`` (a view of the bytes fed: use it before feeding more)."""

    stream_id: int
    data: memoryview


ScanEvent = Open | Payload | End | Reset | GoAway


class FrameScanner:
    """Walks one direction of a tunnel connection; see the module docstring."""

    def __init__(
        self, *, max_open: int = DEFAULT_MAX_OPEN, sender: Literal["client", "server"] | None = None
    ) -> None:
        """``sender``: the side whose bytes these are — its OPENs must then carry its own ids
        (odd for the client, even for the server), each above the last (``None``: unchecked)."""
        self._max_open = max_open
        self._parity = None if sender is None else (1 if sender == "client" else 0)
        self.highest_open = 0
        """The id of the newest stream an OPEN went by for (a GOAWAY's last stream)."""
        self._partial = bytearray()  # a header cut by the end of a message
        self._kind: FrameType | None = None  # the frame whose payload is passing
        self._stream = 0
        self._remaining = 0
        self._kept: bytearray | None = None  # the payload of an OPEN, RESET or GOAWAY
        # (a DATA payload is reported as it passes; any other is skipped)
        self.hello_seen = False
        """A HELLO went by (a frame put in before it would break the receiver's handshake)."""

    @property
    def at_boundary(self) -> bool:
        """The bytes fed so far end between two frames."""
        return self._kind is None and not self._partial

    def feed(self, data: bytes) -> Iterator[ScanEvent]:
        """The events in ``data``, one at a time as the walk reaches them (a message of tiny
        frames is never turned into a list of events at once);
        :class:`~alien.protocol.errors.TunnelProtocolError` (and nothing else) at the first
        malformed frame, after which the scanner is unusable. Walk it to its end before
        forwarding ``data``: only then was every header in it checked."""
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._kind is None:
                pos, event = self._header(data, view, pos, end)
            else:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                pos += take
                self._remaining -= take
                event = None
                if self._kept is not None:
                    self._kept += piece
                elif self._kind is FrameType.DATA:
                    event = Payload(self._stream, piece)
                if not self._remaining:
                    if event is not None:
                        yield event
                    event = self._finish()
            if event is not None:
                yield event

    def _header(
        self, data: bytes, view: memoryview, pos: int, end: int
    ) -> tuple[int, ScanEvent | None]:
        if self._partial or end - pos < HEADER_SIZE:
            take = min(HEADER_SIZE - len(self._partial), end - pos)
            self._partial += view[pos : pos + take]
            pos += take
            if len(self._partial) < HEADER_SIZE:
                return pos, None
            length_type, flags, stream_id = HEADER.unpack(self._partial)
            self._partial.clear()
        else:
            length_type, flags, stream_id = HEADER.unpack_from(data, pos)
            pos += HEADER_SIZE
        length, frame_type = length_type >> 8, length_type & 0xFF
        check_header(frame_type, flags, stream_id, length, MAX_FRAME_SIZE)
        kind = FrameType(frame_type)
        if kind is FrameType.HELLO:
            self.hello_seen = True
        elif kind is FrameType.OPEN:
            if length > self._max_open:
                raise protocol_error(
                    f"OPEN metadata of {length} bytes exceeds {self._max_open}",
                    ErrorCode.FRAME_SIZE_ERROR,
                )
            self._check_new_stream(stream_id)
        self._kind, self._stream, self._remaining = kind, stream_id, length
        self._kept = bytearray() if kind in _KEPT else None
        return pos, (None if length else self._finish())

    def _check_new_stream(self, stream_id: int) -> None:
        if self._parity is not None:
            if stream_id % 2 != self._parity:
                raise protocol_error(f"OPEN for stream {stream_id}, an id the sender may not open")
            if stream_id <= self.highest_open:
                raise protocol_error(f"OPEN reuses stream id {stream_id} (ids must increase)")
        self.highest_open = stream_id

    def _finish(self) -> ScanEvent | None:
        kind, self._kind = self._kind, None
        kept, self._kept = self._kept, None
        if kind is FrameType.END:
            return End(self._stream)
        if kept is not None and kind is not None:
            frame = decode_payload(kind, self._stream, bytes(kept))
            assert isinstance(frame, Open | Reset | GoAway)
            return frame
        return None
