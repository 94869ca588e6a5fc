"""An in-memory message transport pair: a tunnel without sockets, for tests and in-process use.

Each direction is a bounded queue of messages, so a sender that outruns its reader blocks the way
it would on a socket (which is what tests of backpressure need). Closing delivers what was already
sent and then reports the end; aborting drops it, like a reset TCP connection.
"""

from __future__ import annotations

from collections import deque

from alien.errors import ValidationError
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.notify import Notifier


class _Channel:
    """One direction: a bounded FIFO of messages with a closed flag."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: deque[bytes] = deque()
        self.closed: str | None = None
        self.changed = Notifier()

    async def put(self, data: bytes) -> None:
        await self.changed.wait_for(lambda: self.closed or len(self.items) < self.limit)
        if self.closed:
            raise TunnelClosed(f"the in-memory transport is closed ({self.closed})")
        self.items.append(data)
        self.changed.notify()

    async def get(self) -> bytes:
        await self.changed.wait_for(lambda: self.items or self.closed)
        if self.items:
            self.changed.notify()
            return self.items.popleft()
        raise TunnelClosed(f"the in-memory transport is closed ({self.closed})")

    def close(self, why: str, *, drop: bool) -> None:
        if drop:
            self.items.clear()
        self.closed = self.closed or why
        self.changed.notify()


class MemoryTransport:
    """One end of :func:`memory_pair`."""

    def __init__(self, incoming: _Channel, outgoing: _Channel) -> None:
        self._incoming = incoming
        self._outgoing = outgoing

    async def send(self, data: bytes | memoryview) -> None:
        if self._outgoing.closed:
            raise TunnelClosed(f"the in-memory transport is closed ({self._outgoing.closed})")
        await self._outgoing.put(bytes(data))

    async def recv(self) -> bytes:
        return await self._incoming.get()

    async def close(self) -> None:
        self._outgoing.close("closed by the peer", drop=False)
        self._incoming.close("closed locally", drop=True)

    async def abort(self) -> None:
        self._outgoing.close("aborted by the peer", drop=True)
        self._incoming.close("aborted locally", drop=True)


def memory_pair(max_queue: int = 16) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected transports; each direction holds at most ``max_queue`` messages."""
    if max_queue < 1:
        raise ValidationError("max_queue must be at least 1", field="max_queue")
    a_to_b, b_to_a = _Channel(max_queue), _Channel(max_queue)
    return MemoryTransport(b_to_a, a_to_b), MemoryTransport(a_to_b, b_to_a)
