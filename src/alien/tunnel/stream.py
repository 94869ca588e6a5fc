"""One multiplexed stream of a :class:`~alien.tunnel.connection.TunnelConnection`.

A stream is a pair of byte channels plus the metadata its opener sent. Reading hands out received
chunks and returns their credit to the peer only then, so a consumer that stops reading stops the
sender after one window; sending waits for credit instead of buffering. The connection does the
protocol work (:class:`StreamHost`); this class keeps the received bytes and the stream's state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Protocol

from alien.errors import ValidationError
from alien.protocol.errors import StreamStateError, TunnelError
from alien.protocol.frames import ErrorCode
from alien.tunnel.errors import TunnelMessageError
from alien.tunnel.notify import Notifier

Buffer = bytes | bytearray | memoryview


class StreamHost(Protocol):
    """What a stream needs from its connection (implemented by ``TunnelConnection``)."""

    async def stream_send(self, stream: TunnelStream, data: memoryview) -> None: ...

    def stream_end(self, stream: TunnelStream) -> None: ...

    def stream_reset(self, stream: TunnelStream, code: int, reason: str) -> None: ...

    def stream_acknowledge(self, stream: TunnelStream, n: int) -> None: ...

    def stream_credit(self, stream: TunnelStream) -> int: ...


class TunnelStream:
    """A bidirectional byte stream. ``meta`` is the JSON object its opener sent with OPEN.

    ``async for chunk in stream`` reads to the end; a stream reset by either side (or lost with
    its connection) raises :class:`~alien.tunnel.errors.TunnelStreamReset` (or
    :class:`~alien.tunnel.errors.TunnelClosed`) from every method that would need the peer.
    Used as ``async with stream:``, it is reset on the way out unless it finished both ways.
    """

    def __init__(
        self, host: StreamHost, stream_id: int, meta: dict[str, Any], *, local: bool
    ) -> None:
        self.id = stream_id
        self.meta = meta
        self.opened_locally = local
        self._host = host
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._remote_ended = False
        self._local_ended = False
        self._error: TunnelError | None = None
        self._changed = Notifier()
        self.bytes_sent = 0
        """Body bytes queued for the peer (for accounting: an audit records how much moved)."""
        self.bytes_received = 0

    # --- state ----------------------------------------------------------------------------

    @property
    def at_eof(self) -> bool:
        """The peer ended its side and every byte it sent has been read."""
        return self._remote_ended and not self._chunks

    @property
    def remote_ended(self) -> bool:
        """The peer sent END: it will send nothing more (bytes may still be unread)."""
        return self._remote_ended

    @property
    def local_ended(self) -> bool:
        return self._local_ended

    @property
    def error(self) -> TunnelError | None:
        """Why the stream stopped early (reset or connection lost), or ``None``."""
        return self._error

    @property
    def done(self) -> bool:
        """Nothing more can happen on the wire: both sides ended, or the stream failed."""
        return self._error is not None or (self._local_ended and self._remote_ended)

    @property
    def buffered(self) -> int:
        """Received bytes not yet read (they have not been acknowledged to the peer)."""
        return sum(len(chunk) for chunk in self._chunks) - self._offset

    @property
    def send_credit(self) -> int:
        """Bytes :meth:`send` could queue right now without waiting (0 when blocked)."""
        if self._error is not None or self._local_ended:
            return 0
        return self._host.stream_credit(self)

    # --- sending --------------------------------------------------------------------------

    async def send(self, data: Buffer) -> None:
        """Send ``data``, waiting for the peer's credit as needed (this is the backpressure).

        The bytes are queued for the wire when this returns; they are not copied before then,
        so the caller must not change a mutable buffer while the call is pending.
        """
        self._raise_if_failed()
        if self._local_ended:
            raise StreamStateError(f"stream {self.id} was already ended by us")
        view = memoryview(data).cast("B")
        if view:
            await self._host.stream_send(self, view)

    async def end(self) -> None:
        """Half-close: send no more (the peer may still send). A no-op if already ended."""
        if self._local_ended:
            return
        self._raise_if_failed()
        self._host.stream_end(self)

    async def reset(self, code: int = ErrorCode.CANCEL, reason: str = "") -> None:
        """Abort both directions; unread data is dropped. A no-op if the stream is done."""
        if not self.done:
            self._host.stream_reset(self, code, reason)

    # --- reading --------------------------------------------------------------------------

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The next received bytes (at most ``max_bytes``), or ``b""`` at the end of stream."""
        if max_bytes is not None and max_bytes < 1:
            raise ValidationError("max_bytes must be at least 1", field="max_bytes")
        await self._changed.wait_for(self._readable)
        if not self._chunks:
            if self._remote_ended:
                return b""
            self._raise_if_failed()
        chunk = self._chunks[0]
        start = self._offset
        end = len(chunk) if max_bytes is None else min(len(chunk), start + max_bytes)
        out = chunk[start:end]  # a whole chunk is not copied: a full bytes slice is the object
        if end == len(chunk):
            self._chunks.popleft()
            self._offset = 0
        else:
            self._offset = end
        self._host.stream_acknowledge(self, len(out))
        return out

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`TunnelMessageError` if the stream ends first."""
        parts: list[bytes] = []
        missing = n
        while missing:
            part = await self.read(missing)
            if not part:
                raise TunnelMessageError(
                    f"stream {self.id} ended {missing} bytes short of a {n}-byte read",
                    field="stream",
                )
            parts.append(part)
            missing -= len(part)
        return b"".join(parts)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    async def __aenter__(self) -> TunnelStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done:
            reason = "the stream's user failed" if exc is not None else "the stream was abandoned"
            await self.reset(ErrorCode.CANCEL, reason)

    # --- called by the connection -----------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        self._chunks.append(data)
        self._changed.notify()

    def deliver_eof(self) -> None:
        self._remote_ended = True
        self._changed.notify()

    def mark_local_ended(self) -> None:
        self._local_ended = True

    def fail(self, error: TunnelError) -> None:
        """Stop the stream. Bytes stay readable only if the peer had already ended (they are
        then a complete body); otherwise they are dropped and reads raise ``error``."""
        if self._error is not None:
            return
        self._error = error
        if not self._remote_ended:
            self._chunks.clear()
            self._offset = 0
        self._changed.notify()

    def wake(self) -> None:
        """Credit arrived or the stream's state changed: re-check whatever is waiting."""
        self._changed.notify()

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        await self._changed.wait_for(predicate)

    def _readable(self) -> bool:
        return bool(self._chunks) or self._remote_ended or self._error is not None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
