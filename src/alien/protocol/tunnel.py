"""Sans-I/O stream multiplexing for the debug tunnel (what the manager, CLI and agent speak).

Like the ``h2`` and ``websockets`` libraries, :class:`Connection` does no I/O: the caller feeds
bytes it received into :meth:`Connection.receive_data`, gets :mod:`events
<alien.protocol.tunnel_events>` back, and sends whatever :meth:`Connection.data_to_send` returns
over its transport (a WebSocket, a TCP socket, a pipe). Many streams (one per proxied request or
TCP connection) share one connection; each is flow-controlled so a slow consumer bounds memory
instead of the sender flooding it, and bodies stream instead of being buffered whole.

Wire format (version 1)
-----------------------
A connection is one ordered, reliable byte stream of frames; the transport may cut it anywhere
(e.g. a WebSocket binary message may hold part of a frame or several frames). Every frame has a
9-byte header, big-endian::

    +-----------------------------+---------+---------+-------------------------------+
    | length (24 bits)            | type(8) | flags(8)| R | stream id (31 bits)       |
    +-----------------------------+---------+---------+-------------------------------+
    | payload (length bytes)                                                        ...

``length`` counts payload bytes only and must not exceed the receiver's ``max_frame_size``
(announced in its HELLO; 16 KiB until then). ``flags`` must be 0 and the reserved bit ``R`` clear
(reserved for later versions). Stream 0 is the connection itself.

======  ===============  ===========  =========================================================
type    name             stream       payload
======  ===============  ===========  =========================================================
0x0     HELLO            0            ``"ALTN"``, version u8 (=1), max_frame_size u32,
                                      initial_window u32, connection_window u32,
                                      max_concurrent_streams u32 (21 bytes)
0x1     OPEN             new id       UTF-8 JSON object: stream metadata, opaque to this layer
                                      (e.g. ``{"method", "target", "headers"}``)
0x2     DATA             open stream  bytes (may be empty)
0x3     END              open stream  empty; the sender half-closes (sends no more DATA)
0x4     RESET            stream       code u32, reason UTF-8 (≤ 1024 bytes); aborts the stream
0x5     WINDOW_UPDATE    0 or stream  increment u32 (1 to 2^31-1): more send credit
0x6     PING             0            8 opaque bytes; answered by PONG with the same bytes
0x7     PONG             0            8 bytes
0x8     GOAWAY           0            last_stream_id u32, code u32, reason UTF-8 (≤ 1024 bytes)
======  ===============  ===========  =========================================================

Error codes (RESET, GOAWAY): 0 NO_ERROR, 1 PROTOCOL_ERROR, 2 INTERNAL_ERROR,
3 FLOW_CONTROL_ERROR, 4 STREAM_CLOSED, 5 FRAME_SIZE_ERROR, 6 REFUSED_STREAM, 7 CANCEL,
8 INVALID_METADATA; codes from 0x100 up belong to the application (e.g. "upstream refused").

Rules
-----
* **Handshake.** Each side's first frame is its HELLO, sent without waiting for the peer's.
  HELLO values are what the sender is willing to *receive*. Until a side has the peer's HELLO it
  assumes the floors (max_frame_size 16 KiB, windows 64 KiB, 100 concurrent streams); announced
  frame size and windows may not be below the floors, so they only ever grow what the peer
  assumed, and the difference is credited on receipt. Anything but HELLO first, or a second
  HELLO, is a protocol error.
* **Stream ids.** The client opens odd ids, the server even ids, each side strictly increasing, so
  both sides can open streams without coordination. An OPEN with the wrong parity, a reused or
  non-increasing id, or any frame for an id never opened is a connection error.
* **Stream states.** OPEN → open; END from a side half-closes that side; both ENDs close the stream;
  RESET closes it at once. DATA or END from a side after its own END is a connection error
  (``STREAM_CLOSED``). Frames for a stream that is gone (reset by either side, or closed with all
  its data consumed) are ignored, as they may have been in flight when we reset it; their DATA
  still counts against the connection window and its credit is given back as if consumed.
* **Flow control.** Each stream and the connection have a window per direction: the sender may
  send DATA only up to the smaller of the stream's and the connection's credit; the receiver
  returns credit with WINDOW_UPDATE (per stream, and on stream 0 for the connection) once the
  *application* has consumed the bytes (:meth:`Connection.acknowledge`), in batches of at least
  a quarter window. DATA beyond a window, or credit beyond 2^31-1, is a connection error
  (``FLOW_CONTROL_ERROR``). So a side never buffers more than its announced windows.
* **Concurrency.** A side that receives OPEN while ``max_concurrent_streams`` streams opened by
  the peer are still open refuses it with RESET ``REFUSED_STREAM`` (the id stays used).
* **Shutdown.** GOAWAY says "no new streams": the receiver stops opening streams, and streams it
  opened with ids above ``last_stream_id`` were not processed and are reported reset
  (``REFUSED_STREAM``, safe to retry elsewhere). Streams at or below it may finish.
* **Errors.** Malformed frames and rule violations are connection errors: the connection queues
  GOAWAY with the error code, raises :class:`TunnelProtocolError`, and is dead afterwards. Bad
  OPEN metadata only resets that stream (``INVALID_METADATA``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from alien.errors import ValidationError
from alien.protocol.errors import StreamStateError, TunnelProtocolError
from alien.protocol.frames import (
    FLOOR_SETTINGS,
    MAX_STREAM_ID,
    MAX_WINDOW,
    PING_SIZE,
    Data,
    End,
    ErrorCode,
    Frame,
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
    decode_meta,
    encode_frame,
    encode_meta,
    frame_header,
    protocol_error,
)
from alien.protocol.tunnel_events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingReceived,
    PongReceived,
    SettingsReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)

__all__ = [
    "Connection",
    "ConnectionTerminated",
    "DataReceived",
    "ErrorCode",
    "Event",
    "PingReceived",
    "PongReceived",
    "Settings",
    "SettingsReceived",
    "StreamEnded",
    "StreamOpened",
    "StreamReset",
    "StreamStateError",
    "TunnelProtocolError",
    "WindowUpdated",
]

Role = Literal["client", "server"]


@dataclass(slots=True)
class _Stream:
    """Per-stream bookkeeping. Kept until both sides ended *and* the app consumed every byte."""

    id: int
    local_open: bool
    remote_open: bool
    send_window: int
    recv_window: int
    unacked: int = 0
    pending_credit: int = 0

    @property
    def closed(self) -> bool:
        return not (self.local_open or self.remote_open)


class Connection:
    """One end of a tunnel connection. Not thread-safe: drive it from one task or thread."""

    def __init__(self, role: Role, *, settings: Settings | None = None) -> None:
        if role not in ("client", "server"):
            raise ValidationError("role must be 'client' or 'server'", field="role")
        self.role: Role = role
        self.local_settings = settings or Settings()
        self.remote_settings = FLOOR_SETTINGS
        self._hello_received = False
        self._out: list[bytes | memoryview] = []  # frames, DATA payloads not copied
        self._decoder = FrameDecoder(self.local_settings.max_frame_size)
        self._streams: dict[int, _Stream] = {}
        self._next_local_id = 1 if role == "client" else 2
        self._highest_remote_id = 0
        self._conn_send_window = FLOOR_SETTINGS.connection_window
        self._conn_recv_window = self.local_settings.connection_window
        self._conn_pending_credit = 0
        self._goaway_sent = False
        self._goaway_received = False
        self._failed: TunnelProtocolError | None = None
        self._ping_counter = itertools.count(1)
        self._queue(Hello(self.local_settings))

    # --- application API ------------------------------------------------------------------

    def open_stream(self, meta: dict[str, Any]) -> int:
        """Open a stream carrying ``meta`` (a JSON object) and return its id.

        Raises :class:`StreamStateError` if the connection is closing or the peer's concurrency
        limit is reached (wait for a stream to end or reset), ``ValidationError`` for metadata
        that is not a JSON object or does not fit in one frame.
        """
        self._check_usable()
        if self._goaway_sent or self._goaway_received:
            raise StreamStateError("the connection is going away; open a new one")
        if self._open_count(local=True) >= self.remote_settings.max_concurrent_streams:
            raise StreamStateError("the peer's concurrent stream limit is reached")
        if self._next_local_id > MAX_STREAM_ID:
            raise StreamStateError("stream ids are exhausted; open a new connection")
        try:
            raw = encode_meta(meta)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"stream metadata is not a JSON object: {exc}", field="meta"
            ) from None
        if len(raw) > self.remote_settings.max_frame_size:
            raise ValidationError(
                f"stream metadata of {len(raw)} bytes exceeds the peer's frame size "
                f"{self.remote_settings.max_frame_size}",
                field="meta",
            )
        stream_id = self._next_local_id
        self._next_local_id += 2
        self._streams[stream_id] = _Stream(
            id=stream_id,
            local_open=True,
            remote_open=True,
            send_window=self.remote_settings.initial_window,
            recv_window=self.local_settings.initial_window,
        )
        self._queue(Open(stream_id, raw))
        return stream_id

    def send_data(self, stream_id: int, data: bytes) -> int:
        """Queue as much of ``data`` as the credit allows; returns the number of bytes taken.

        The caller keeps the rest and retries after a :class:`WindowUpdated` for this stream
        (or for stream 0).
        """
        stream = self._sendable(stream_id)
        n = min(len(data), stream.send_window, self._conn_send_window)
        if n <= 0:
            return 0
        stream.send_window -= n
        self._conn_send_window -= n
        chunk = self.remote_settings.max_frame_size
        view = memoryview(data)[:n]
        if not isinstance(view.obj, bytes):  # a mutable buffer may change once we return
            view = memoryview(bytes(view))
        for start in range(0, n, chunk):
            piece = view[start : start + chunk]
            self._out.append(frame_header(FrameType.DATA, stream_id, len(piece)))
            self._out.append(piece)
        return n

    def end_stream(self, stream_id: int) -> None:
        """Half-close: we send no more data on this stream (the peer still may)."""
        stream = self._sendable(stream_id)
        stream.local_open = False
        self._queue(End(stream_id))
        self._forget_if_done(stream)

    def reset_stream(self, stream_id: int, code: int = ErrorCode.CANCEL, reason: str = "") -> None:
        """Abort a stream in both directions; unconsumed received data is released.

        A no-op if the stream is already gone (e.g. the peer reset it first: a benign race).
        """
        self._check_usable()
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known_locally(stream_id)
            return
        if not stream.closed:  # a closed stream kept for unconsumed data needs no RESET
            self._queue(Reset(stream_id, _as_u32(code), reason))
        self._drop(stream)

    def acknowledge(self, stream_id: int, n: int) -> None:
        """The application consumed ``n`` received bytes of the stream: return their credit.

        Acknowledging on a stream that was reset in the meantime is a no-op (its credit was
        already returned).
        """
        self._check_usable()
        if n < 0:
            raise ValidationError("cannot acknowledge a negative number of bytes", field="n")
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known_locally(stream_id)
            return
        if n > stream.unacked:
            raise StreamStateError(
                f"acknowledging {n} bytes on stream {stream_id} but only {stream.unacked} "
                "were received and not yet acknowledged"
            )
        stream.unacked -= n
        if stream.remote_open:
            stream.pending_credit += n
            if stream.pending_credit >= self.local_settings.initial_window // 4:
                self._grant(stream.id, stream.pending_credit)
                stream.recv_window += stream.pending_credit
                stream.pending_credit = 0
        self._credit_connection(n)
        self._forget_if_done(stream)

    def ping(self, data: bytes | None = None) -> bytes:
        """Queue a PING; returns its 8-byte payload (the matching PONG carries the same)."""
        self._check_usable()
        payload = data if data is not None else next(self._ping_counter).to_bytes(PING_SIZE, "big")
        if len(payload) != PING_SIZE:
            raise ValidationError(f"a ping payload is exactly {PING_SIZE} bytes", field="data")
        self._queue(Ping(bytes(payload)))
        return bytes(payload)

    def close(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Queue GOAWAY: the peer may open no new streams; open ones may finish."""
        self._check_usable()
        self._goaway_sent = True
        self._queue(GoAway(self._highest_remote_id, _as_u32(code), reason))

    def receive_data(self, data: bytes) -> list[Event]:
        """Process bytes from the peer; returns the events they caused, in order.

        Raises :class:`TunnelProtocolError` (and only that) if the peer broke the protocol; a
        GOAWAY saying why is then queued in :meth:`data_to_send` and the connection is dead.
        """
        if self._failed is not None:
            raise TunnelProtocolError(
                f"the connection already failed: {self._failed.message}",
                error_code=self._failed.error_code,
            )
        events: list[Event] = []
        self._decoder.feed(data)
        try:
            while (frame := self._decoder.next_frame()) is not None:
                self._handle(frame, events)
        except TunnelProtocolError as exc:
            self._fail(exc)
            raise
        return events

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call (empty if nothing)."""
        return b"".join(self.buffers_to_send())

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """The same as :meth:`data_to_send`, as the list of pieces it is made of: DATA payloads
        are views of what the application sent (never of a mutable buffer), so a sender that
        cuts the bytes into messages anyway copies each byte once, not three times."""
        out, self._out = self._out, []
        return out

    # --- introspection --------------------------------------------------------------------

    def send_credit(self, stream_id: int) -> int:
        """How many bytes :meth:`send_data` would accept on the stream right now."""
        stream = self._sendable(stream_id)
        return max(0, min(stream.send_window, self._conn_send_window))

    def unacknowledged(self, stream_id: int) -> int:
        """Bytes delivered on the stream that the application has not acknowledged."""
        stream = self._streams.get(stream_id)
        return stream.unacked if stream is not None else 0

    @property
    def open_streams(self) -> list[int]:
        """Ids of streams not yet closed in both directions."""
        return [s.id for s in self._streams.values() if not s.closed]

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def handshake_done(self) -> bool:
        return self._hello_received

    # --- frame handling -------------------------------------------------------------------

    def _handle(self, frame: Frame, events: list[Event]) -> None:
        if not self._hello_received and not isinstance(frame, Hello):
            raise protocol_error(f"expected HELLO first, got {frame.TYPE.name}")
        if isinstance(frame, Data):
            self._on_data(frame, events)
        elif isinstance(frame, WindowUpdate):
            self._on_window_update(frame, events)
        elif isinstance(frame, Open):
            self._on_open(frame, events)
        elif isinstance(frame, End):
            self._on_end(frame, events)
        elif isinstance(frame, Reset):
            self._on_reset(frame, events)
        elif isinstance(frame, Ping):
            self._queue(Pong(frame.data))
            events.append(PingReceived(frame.data))
        elif isinstance(frame, Pong):
            events.append(PongReceived(frame.data))
        elif isinstance(frame, GoAway):
            self._on_goaway(frame, events)
        else:
            self._on_hello(frame, events)

    def _on_hello(self, frame: Hello, events: list[Event]) -> None:
        if self._hello_received:
            raise protocol_error("a second HELLO")
        self._hello_received = True
        settings = frame.settings
        stream_delta = settings.initial_window - self.remote_settings.initial_window
        conn_delta = settings.connection_window - self.remote_settings.connection_window
        self.remote_settings = settings
        self._conn_send_window = self._grown(self._conn_send_window, conn_delta)
        for stream in self._streams.values():
            stream.send_window = self._grown(stream.send_window, stream_delta)
        events.append(SettingsReceived(settings))
        if conn_delta or stream_delta:
            events.append(WindowUpdated(0))

    def _on_open(self, frame: Open, events: list[Event]) -> None:
        stream_id = frame.stream_id
        if self._is_local_id(stream_id):
            raise protocol_error(f"OPEN for stream {stream_id}, an id only we may open")
        if stream_id <= self._highest_remote_id:
            raise protocol_error(f"OPEN reuses stream id {stream_id} (ids must increase)")
        self._highest_remote_id = stream_id
        if self._goaway_sent:
            self._queue(Reset(stream_id, ErrorCode.REFUSED_STREAM, "the connection is closing"))
            return
        if self._open_count(local=False) >= self.local_settings.max_concurrent_streams:
            self._queue(Reset(stream_id, ErrorCode.REFUSED_STREAM, "too many concurrent streams"))
            return
        try:
            meta = decode_meta(frame.meta)
        except MetadataError as exc:
            self._queue(Reset(stream_id, ErrorCode.INVALID_METADATA, str(exc)))
            return
        self._streams[stream_id] = _Stream(
            id=stream_id,
            local_open=True,
            remote_open=True,
            send_window=self.remote_settings.initial_window,
            recv_window=self.local_settings.initial_window,
        )
        events.append(StreamOpened(stream_id, meta))

    def _on_data(self, frame: Data, events: list[Event]) -> None:
        size = len(frame.data)
        if size > self._conn_recv_window:
            raise protocol_error("DATA exceeds the connection window", ErrorCode.FLOW_CONTROL_ERROR)
        self._conn_recv_window -= size
        stream = self._receiving(frame)
        if stream is None:  # closed already: discard, but give the connection credit back
            self._credit_connection(size)
            return
        if size > stream.recv_window:
            raise protocol_error(
                f"DATA exceeds the window of stream {stream.id}", ErrorCode.FLOW_CONTROL_ERROR
            )
        stream.recv_window -= size
        stream.unacked += size
        if size:
            events.append(DataReceived(stream.id, frame.data))

    def _on_end(self, frame: End, events: list[Event]) -> None:
        stream = self._receiving(frame)
        if stream is None:
            return
        stream.remote_open = False
        stream.pending_credit = 0  # the peer sends no more: stream credit is pointless now
        events.append(StreamEnded(stream.id))
        self._forget_if_done(stream)

    def _on_reset(self, frame: Reset, events: list[Event]) -> None:
        stream = self._known_stream(frame.stream_id)
        if stream is None or stream.closed:
            return
        self._drop(stream)
        events.append(StreamReset(stream.id, frame.code, frame.reason))

    def _on_window_update(self, frame: WindowUpdate, events: list[Event]) -> None:
        if frame.stream_id == 0:
            self._conn_send_window = self._grown(self._conn_send_window, frame.increment)
            events.append(WindowUpdated(0))
            return
        stream = self._known_stream(frame.stream_id)
        if stream is None or not stream.local_open:
            return  # credit for a stream we finished sending on: harmless, ignore
        stream.send_window = self._grown(stream.send_window, frame.increment)
        events.append(WindowUpdated(stream.id))

    def _on_goaway(self, frame: GoAway, events: list[Event]) -> None:
        self._goaway_received = True
        events.append(ConnectionTerminated(frame.code, frame.reason, frame.last_stream_id))
        unprocessed = [
            s
            for s in self._streams.values()
            if self._is_local_id(s.id) and s.id > frame.last_stream_id and not s.closed
        ]
        for stream in unprocessed:
            self._drop(stream)
            events.append(
                StreamReset(stream.id, ErrorCode.REFUSED_STREAM, "the peer is going away")
            )

    # --- helpers --------------------------------------------------------------------------

    def _queue(self, frame: Frame) -> None:
        self._out.append(encode_frame(frame))

    def _fail(self, exc: TunnelProtocolError) -> None:
        self._failed = exc
        self._queue(GoAway(self._highest_remote_id, exc.error_code, exc.message))

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StreamStateError(f"the connection failed: {self._failed.message}")

    def _is_local_id(self, stream_id: int) -> bool:
        return stream_id % 2 == (1 if self.role == "client" else 0)

    def _was_opened(self, stream_id: int) -> bool:
        if self._is_local_id(stream_id):
            return stream_id < self._next_local_id
        return stream_id <= self._highest_remote_id

    def _known_stream(self, stream_id: int) -> _Stream | None:
        """The stream if it is live, ``None`` if it is gone; a protocol error if never opened."""
        stream = self._streams.get(stream_id)
        if stream is None and not self._was_opened(stream_id):
            raise protocol_error(f"frame for stream {stream_id}, which was never opened")
        return stream

    def _receiving(self, frame: Data | End) -> _Stream | None:
        stream = self._known_stream(frame.stream_id)
        if stream is None:
            return None
        if not stream.remote_open:
            raise protocol_error(
                f"{frame.TYPE.name} on stream {stream.id} after its END", ErrorCode.STREAM_CLOSED
            )
        return stream

    def _check_known_locally(self, stream_id: int) -> None:
        if stream_id <= 0 or not self._was_opened(stream_id):
            raise StreamStateError(f"stream {stream_id} was never opened")

    def _sendable(self, stream_id: int) -> _Stream:
        self._check_usable()
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known_locally(stream_id)
            raise StreamStateError(f"stream {stream_id} is closed")
        if not stream.local_open:
            raise StreamStateError(f"stream {stream_id} was already ended by us")
        return stream

    def _open_count(self, *, local: bool) -> int:
        return sum(
            1 for s in self._streams.values() if self._is_local_id(s.id) == local and not s.closed
        )

    def _grown(self, window: int, delta: int) -> int:
        if window + delta > MAX_WINDOW:
            raise protocol_error("send window grew past 2^31-1", ErrorCode.FLOW_CONTROL_ERROR)
        return window + delta

    def _grant(self, stream_id: int, increment: int) -> None:
        self._queue(WindowUpdate(stream_id, increment))

    def _credit_connection(self, n: int) -> None:
        self._conn_pending_credit += n
        if self._conn_pending_credit >= self.local_settings.connection_window // 4:
            self._grant(0, self._conn_pending_credit)
            self._conn_recv_window += self._conn_pending_credit
            self._conn_pending_credit = 0

    def _drop(self, stream: _Stream) -> None:
        """Forget a reset stream; bytes the app never consumed go back to the connection."""
        del self._streams[stream.id]
        if stream.unacked:
            self._credit_connection(stream.unacked)

    def _forget_if_done(self, stream: _Stream) -> None:
        if stream.closed and stream.unacked == 0:
            del self._streams[stream.id]


def _as_u32(code: int) -> int:
    if not 0 <= int(code) < 2**32:
        raise ValidationError("an error code is an unsigned 32-bit integer", field="code")
    return int(code)
