"""The asyncio driver of a tunnel connection: the sans-I/O protocol plus a message transport.

:class:`alien.protocol.tunnel.Connection` decides every byte on the wire; this module only moves
bytes and wakes tasks, in the style of the ``websockets`` library:

* one **reader** task feeds each received message to the protocol and dispatches its events
  (data into stream buffers, credit to blocked senders, new streams to the handler);
* one **writer** task sends what the protocol queued. It takes everything queued at once, so the
  frames of many streams (and the small WINDOW_UPDATE, PING and END frames) share messages instead
  of costing one WebSocket message each, and cuts it into messages of at most
  ``max_message_size`` bytes (the tunnel's byte stream may be cut anywhere);
* senders wait while more than ``write_limit`` bytes are queued for the writer, and while their
  stream has no credit: the queue in front of a slow transport stays bounded, and a slow reader
  on the far side stops the sender after one window instead of filling memory;
* an optional **keepalive** task pings every ``ping_interval`` seconds; no PONG within
  ``ping_timeout`` seconds fails the connection (a silently dead peer is noticed).

When the connection ends for any reason, every stream that is still open fails at once with
:class:`TunnelClosed`, so nothing waits forever on a dead transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Literal

from alien.errors import ValidationError
from alien.protocol.errors import TunnelError, TunnelProtocolError
from alien.protocol.frames import HEADER, HEADER_SIZE, ErrorCode, Settings
from alien.protocol.tunnel import (
    Connection,
    ConnectionTerminated,
    DataReceived,
    Event,
    PongReceived,
    SettingsReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)
from alien.tunnel.errors import TunnelClosed, TunnelStreamReset
from alien.tunnel.notify import Notifier
from alien.tunnel.stream import TunnelStream
from alien.tunnel.transport import MAX_MESSAGE_SIZE, MessageTransport

log = logging.getLogger(__name__)

StreamHandler = Callable[[TunnelStream], Awaitable[None]]
"""Called in its own task for each stream the peer opens."""

DEFAULT_WRITE_LIMIT = 2 * 1024 * 1024


class TunnelConnection:
    """One end of a tunnel over ``transport``. ``role`` is ``"client"`` for the side that dialled.

    Streams the peer opens go to ``handler`` (each in its own task; the stream is reset if the
    handler returns without finishing it) or, without a handler, to :meth:`accept`.

    Use as ``async with TunnelConnection(...) as conn:`` (closed gracefully on the way out, or
    aborted if the block raised), or call :meth:`start` and later :meth:`close`/:meth:`abort`.
    """

    def __init__(
        self,
        transport: MessageTransport,
        role: Literal["client", "server"],
        *,
        handler: StreamHandler | None = None,
        settings: Settings | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        max_message_size: int = MAX_MESSAGE_SIZE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        close_timeout: float = 10.0,
    ) -> None:
        _check_positive(ping_timeout, "ping_timeout")
        _check_positive(close_timeout, "close_timeout")
        _check_positive(max_message_size, "max_message_size")
        _check_positive(write_limit, "write_limit")
        if ping_interval is not None:
            _check_positive(ping_interval, "ping_interval")
        self._transport = transport
        self._proto = Connection(role, settings=settings)
        self._handler = handler
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_message = max_message_size
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._streams: dict[int, TunnelStream] = {}
        self._incoming: deque[TunnelStream] = deque()
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._state = Notifier()  # handshake, stream slots, incoming streams, termination
        self._io = Notifier()  # writer work and write-buffer room
        self._write_pending = False
        self._queued = 0  # payload bytes handed to the protocol since the writer last took any
        self._in_flight = 0  # bytes the writer took and has not yet handed to the transport
        self._goaway_sent = False
        self._goaway: ConnectionTerminated | None = None
        self._terminating = False
        self._close_error: TunnelClosed | None = None
        self._closed = asyncio.Event()
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> TunnelConnection:
        """Start the reader, writer and keepalive tasks and send our HELLO."""
        if self._started:
            return self
        self._started = True
        self._tasks.append(asyncio.create_task(self._read_loop(), name="tunnel-reader"))
        self._writer = asyncio.create_task(self._write_loop(), name="tunnel-writer")
        self._tasks.append(self._writer)
        if self._ping_interval is not None:
            self._tasks.append(asyncio.create_task(self._keepalive(), name="tunnel-keepalive"))
        self._kick()
        return self

    async def __aenter__(self) -> TunnelConnection:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.abort(f"the connection's user failed: {type(exc).__name__}")

    async def close(self, timeout: float | None = None) -> None:
        """Graceful shutdown: send GOAWAY (the peer opens nothing new), let open streams finish
        (at most ``timeout`` seconds, default ``close_timeout``; then they are reset), wait for
        stream handlers, send everything queued and close the transport."""
        if self._terminating:
            await self._closed.wait()
            return
        if not self._goaway_sent and not self._proto.failed:
            self._goaway_sent = True
            self._proto.close(ErrorCode.NO_ERROR, "closing")
            self._kick()
        try:
            async with asyncio.timeout(self._close_timeout if timeout is None else timeout):
                await self._state.wait_for(lambda: not self._streams or self._terminating)
        except TimeoutError:
            for stream in list(self._streams.values()):
                self.stream_reset(stream, ErrorCode.CANCEL, "the connection is closing")
        await self._terminate(None, flush=True, graceful=True)

    async def abort(self, reason: str = "aborted", code: int = ErrorCode.CANCEL) -> None:
        """Fail every stream now, tell the peer why (best effort, briefly) and drop the
        transport."""
        if self._terminating:
            await self._closed.wait()
            return
        if not self._goaway_sent and not self._proto.failed:
            self._goaway_sent = True
            self._proto.close(code, reason)
            self._kick()
        await self._terminate(TunnelClosed(f"the tunnel was aborted: {reason}"), flush=True)

    async def wait_closed(self) -> None:
        """Return once the connection has ended (for any reason)."""
        await self._closed.wait()

    @property
    def closed(self) -> bool:
        """The connection is ending or has ended: no stream can be opened any more."""
        return self._terminating

    @property
    def close_error(self) -> TunnelClosed | None:
        """Why the connection ended, or ``None`` if it ended cleanly (or has not ended)."""
        return self._close_error

    @property
    def peer_going_away(self) -> bool:
        """The peer sent GOAWAY: no new streams here (dial a new connection for more)."""
        return self._goaway is not None

    @property
    def role(self) -> str:
        return self._proto.role

    @property
    def remote_settings(self) -> Settings:
        return self._proto.remote_settings

    @property
    def streams(self) -> list[TunnelStream]:
        """Streams not yet finished in both directions."""
        return list(self._streams.values())

    # --- streams --------------------------------------------------------------------------

    async def open_stream(self, meta: dict[str, Any]) -> TunnelStream:
        """Open a stream carrying ``meta`` (a JSON object).

        Waits for the peer's HELLO and, when the peer's concurrent-stream limit is reached,
        for a stream to finish. Raises :class:`TunnelClosed` if the connection is ending (or
        the peer said GOAWAY: open a new connection), ``ValidationError`` for bad ``meta``.
        """
        if not self._started:
            raise ValidationError("start the connection before opening streams", field="start")
        await self._state.wait_for(self._can_open)
        if self._terminating:
            raise self._ended_error()
        if self._goaway is not None:
            raise TunnelClosed(f"the peer is going away ({self._goaway.reason or 'no reason'})")
        if self._goaway_sent:
            raise TunnelClosed("this tunnel connection is closing")
        stream_id = self._proto.open_stream(meta)
        stream = TunnelStream(self, stream_id, meta, local=True)
        self._streams[stream_id] = stream
        self._kick()
        return stream

    async def accept(self) -> TunnelStream:
        """The next stream the peer opened (only on a connection without a handler)."""
        if self._handler is not None:
            raise ValidationError(
                "this connection hands the peer's streams to its handler", field="handler"
            )
        await self._state.wait_for(lambda: self._incoming or self._terminating)
        if self._incoming:
            return self._incoming.popleft()
        raise self._ended_error()

    async def ping(self) -> float:
        """Round-trip time of one PING, in seconds (no timeout of its own)."""
        if self._terminating:
            raise self._ended_error()
        payload = self._proto.ping()
        future = asyncio.get_running_loop().create_future()
        self._pongs[payload] = future
        self._kick()
        started = asyncio.get_running_loop().time()
        try:
            await future
        finally:
            self._pongs.pop(payload, None)
        return asyncio.get_running_loop().time() - started

    # --- StreamHost: what TunnelStream calls ---------------------------------------------

    async def stream_send(self, stream: TunnelStream, data: memoryview) -> None:
        while data:
            await self._io.wait_for(self._has_write_room)
            self._check_sendable(stream)
            room = self._write_limit - self._queued - self._in_flight
            taken = self._proto.send_data(stream.id, data[:room])
            if taken:
                stream.bytes_sent += taken
                self._queued += taken
                data = data[taken:]
                self._kick()
            else:
                await stream.wait_until(lambda: self._can_send(stream))

    def stream_end(self, stream: TunnelStream) -> None:
        self._check_sendable(stream)
        self._proto.end_stream(stream.id)
        stream.mark_local_ended()
        self._kick()
        self._forget_if_done(stream)

    def stream_reset(self, stream: TunnelStream, code: int, reason: str) -> None:
        if stream.done:
            return
        if not self._terminating:
            self._proto.reset_stream(stream.id, code, reason)
            self._kick()
        stream.fail(TunnelStreamReset(stream.id, code, reason, by_peer=False))
        self._forget_if_done(stream)

    def stream_acknowledge(self, stream: TunnelStream, n: int) -> None:
        if self._terminating or self._proto.failed:
            return
        self._proto.acknowledge(stream.id, n)
        self._kick()

    def stream_credit(self, stream: TunnelStream) -> int:
        if self._terminating or stream.done:
            return 0
        return self._proto.send_credit(stream.id)

    # --- reader ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._transport.recv()
                try:
                    events = self._proto.receive_data(data)
                finally:
                    self._kick()  # PONGs, refusals, or the GOAWAY of a protocol error
                for event in events:
                    self._dispatch(event)
        except TunnelProtocolError as exc:
            error = TunnelClosed(f"the peer broke the tunnel protocol: {exc.message}")
            await self._terminate(error, flush=True)
        except TunnelClosed as exc:
            await self._terminate(self._transport_end_error(exc), flush=False)
        except Exception as exc:
            log.exception("the tunnel reader failed")
            await self._terminate(TunnelClosed(f"internal error: {type(exc).__name__}"), flush=True)

    def _dispatch(self, event: Event) -> None:
        match event:
            case DataReceived(stream_id, data):
                stream = self._streams.get(stream_id)
                if stream is not None:
                    stream.bytes_received += len(data)
                    stream.deliver(data)
            case WindowUpdated(0) | SettingsReceived():
                for stream in self._streams.values():
                    stream.wake()
                self._state.notify()
            case WindowUpdated(stream_id):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream.wake()
            case StreamOpened(stream_id, meta):
                self._on_stream_opened(stream_id, meta)
            case StreamEnded(stream_id):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream.deliver_eof()
                    self._forget_if_done(stream)
            case StreamReset(stream_id, code, reason):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream.fail(TunnelStreamReset(stream_id, code, reason, by_peer=True))
                    self._forget_if_done(stream)
            case PongReceived(data):
                future = self._pongs.get(data)
                if future is not None and not future.done():
                    future.set_result(None)
            case ConnectionTerminated():
                self._goaway = event
                self._state.notify()

    def _on_stream_opened(self, stream_id: int, meta: dict[str, Any]) -> None:
        stream = TunnelStream(self, stream_id, meta, local=False)
        self._streams[stream_id] = stream
        if self._handler is None:
            self._incoming.append(stream)
            self._state.notify()
            return
        task = asyncio.create_task(self._run_handler(stream), name=f"tunnel-stream-{stream_id}")
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _run_handler(self, stream: TunnelStream) -> None:
        assert self._handler is not None
        code, reason = ErrorCode.CANCEL, "the stream handler returned"
        try:
            await self._handler(stream)
        except TunnelError as exc:
            log.debug("tunnel stream %d stopped: %s", stream.id, exc)
        except Exception:
            log.exception("the tunnel stream handler failed on stream %d", stream.id)
            code, reason = ErrorCode.INTERNAL_ERROR, "the stream handler failed"
        finally:
            self.stream_reset(stream, code, reason)

    # --- writer ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._io.wait_for(lambda: self._write_pending)
                self._write_pending = False
                total, messages = self._take_messages()
                self._queued = 0
                if not total:
                    self._io.notify()
                    continue
                self._in_flight = total
                for message in messages:
                    await self._transport.send(message)
                    self._in_flight -= len(message)
                    self._io.notify()
        except TunnelClosed as exc:
            await self._terminate(exc, flush=False)
        except Exception as exc:
            log.exception("the tunnel writer failed")
            await self._terminate(
                TunnelClosed(f"internal error: {type(exc).__name__}"), flush=False
            )

    def _take_messages(self) -> tuple[int, Iterator[bytes]]:
        """What the protocol queued: its size, and the messages to send it in."""
        buffers = self._proto.buffers_to_send()
        total = sum(len(buffer) for buffer in buffers)
        return total, _messages(buffers, self._piece_size(total)) if total else iter(())

    def _piece_size(self, total: int) -> int:
        """Cut ``total`` bytes into equal messages of at most ``max_message_size``: a batch just
        over the limit becomes two halves, not a full message and a tiny one (each message
        costs a round of the transport's machinery on both sides, whatever its size)."""
        count = -(-total // self._max_message)
        return -(-total // count)

    def _kick(self) -> None:
        self._write_pending = True
        self._io.notify()

    async def _flush(self) -> None:
        """Wait until everything queued so far has been handed to the transport. A connection
        that was never started (ended before its traffic was let through) has no writer: what
        it queued — its HELLO and a GOAWAY saying why — is sent from here."""
        writer = self._writer
        if writer is None:
            for message in self._take_messages()[1]:
                await self._transport.send(message)
            return
        self._kick()
        await self._io.wait_for(
            lambda: (
                writer is None
                or writer.done()
                or (not self._write_pending and self._in_flight == 0)
            )
        )

    # --- keepalive ------------------------------------------------------------------------

    async def _keepalive(self) -> None:
        assert self._ping_interval is not None
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                async with asyncio.timeout(self._ping_timeout):
                    await self.ping()
            except TimeoutError:
                error = TunnelClosed(f"no answer to a keepalive PING in {self._ping_timeout:g} s")
                await self._terminate(error, flush=False)
                return
            except TunnelError:
                return

    # --- ending ---------------------------------------------------------------------------

    async def _terminate(
        self, error: TunnelClosed | None, *, flush: bool, graceful: bool = False
    ) -> None:
        """End the connection once; every other caller waits for that to finish."""
        if self._terminating:
            await self._closed.wait()
            return
        self._terminating = True
        self._close_error = error
        failure = error or TunnelClosed("the tunnel connection is closed")
        for stream in list(self._streams.values()):
            stream.fail(failure)
        self._streams.clear()
        for future in self._pongs.values():
            if not future.done():
                future.set_exception(failure)
        self._state.notify()
        try:
            await self._finish(flush=flush, graceful=graceful)
        finally:
            self._closed.set()

    async def _finish(self, *, flush: bool, graceful: bool) -> None:
        """Stop the tasks and the transport. With ``flush``, what is queued (a GOAWAY saying
        why, the last frames of finished streams) is sent and the transport closed politely,
        within ``close_timeout`` when graceful and one second otherwise; then it is dropped."""
        current = asyncio.current_task()
        handlers = {task for task in self._handler_tasks if task is not current}
        if graceful and handlers:
            await asyncio.wait(handlers, timeout=self._close_timeout)
        others = [t for t in (*self._tasks, *self._handler_tasks) if t is not current]
        polite = False
        if flush:
            try:
                async with asyncio.timeout(self._close_timeout if graceful else 1.0):
                    await self._flush()
                    self._cancel(others)
                    await self._transport.close()
                    polite = True
            except Exception as exc:
                log.debug("the tunnel transport did not close politely: %r", exc)
        self._cancel(others)
        if not polite:
            await self._transport.abort()
        if others:
            await asyncio.wait(others, timeout=self._close_timeout)

    @staticmethod
    def _cancel(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()

    # --- helpers --------------------------------------------------------------------------

    def _transport_end_error(self, lost: TunnelClosed) -> TunnelClosed | None:
        """Why the connection ended when its transport did: nothing (a clean close after the
        peer's GOAWAY, no stream left), the reason the peer's GOAWAY gave (e.g. "the debug
        session was revoked"), or the transport's own error."""
        goaway = self._goaway
        if goaway is None:
            return lost
        if goaway.code == ErrorCode.NO_ERROR:
            return None if not self._streams else lost
        return TunnelClosed(
            f"the peer closed the tunnel: {goaway.reason or 'no reason given'}",
            details={"goaway_code": goaway.code, "reason": goaway.reason},
        )

    def _ended_error(self) -> TunnelClosed:
        return self._close_error or TunnelClosed("the tunnel connection is closed")

    def _can_open(self) -> bool:
        if self._terminating or self._goaway is not None or self._goaway_sent:
            return True
        if not self._proto.handshake_done:
            return False
        mine = sum(1 for s in self._streams.values() if s.opened_locally)
        return mine < self._proto.remote_settings.max_concurrent_streams

    def _has_write_room(self) -> bool:
        return self._terminating or self._queued + self._in_flight < self._write_limit

    def _can_send(self, stream: TunnelStream) -> bool:
        return stream.done or self._terminating or self._proto.send_credit(stream.id) > 0

    def _check_sendable(self, stream: TunnelStream) -> None:
        if stream.error is not None:
            raise stream.error
        if self._terminating:
            raise self._ended_error()

    def _forget_if_done(self, stream: TunnelStream) -> None:
        if stream.done and self._streams.pop(stream.id, None) is not None:
            self._state.notify()


def _messages(buffers: list[bytes | memoryview], size: int) -> Iterator[bytes]:
    """``buffers`` (as :meth:`Connection.buffers_to_send` gives them: whole frames, each
    starting a buffer) regrouped into messages of at most ``size`` bytes, each joined once (the
    only copy of the bytes on their way to the transport).

    Messages are cut between frames: the receiver then parses each message in place, where a
    frame cut in two would first be copied, with the rest of its message, into a buffer of its
    own (three copies of every byte instead of one). Only a frame longer than ``size`` is cut;
    the tunnel's byte stream may be cut anywhere, so that stays correct, merely slower."""
    group: list[bytes | memoryview] = []
    room = size
    for frame, length in _frames(buffers):
        if length > room and group:
            yield b"".join(group)
            group, room = [], size
        if length <= room:
            group += frame
            room -= length
            continue
        view = memoryview(b"".join(frame))
        while len(view) > size:
            yield bytes(view[:size])
            view = view[size:]
        group, room = [view], size - len(view)
    if group:
        yield b"".join(group)


def _frames(buffers: list[bytes | memoryview]) -> Iterator[tuple[list[bytes | memoryview], int]]:
    """``buffers`` grouped into whole frames, with their lengths: a frame starts a buffer, and
    its header says how many bytes it spans. (A buffer too short to hold a header is passed on
    alone: it is not a frame start, and cutting there is merely slower.)"""
    frame: list[bytes | memoryview] = []
    length = missing = 0
    for buffer in buffers:
        size = len(buffer)
        if not size:
            continue
        if not missing:
            missing = size
            if size >= HEADER_SIZE:
                missing = HEADER_SIZE + (HEADER.unpack_from(buffer)[0] >> 8)
        frame.append(buffer)
        length += size
        missing -= size
        if missing <= 0:
            yield frame, length
            frame, length, missing = [], 0, 0
    if frame:
        yield frame, length


def _check_positive(value: float, name: str) -> None:
    if not value > 0:
        raise ValidationError(f"{name} must be positive", field=name)
