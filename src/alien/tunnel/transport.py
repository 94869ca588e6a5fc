"""Message transports a tunnel runs over, and adapters for the WebSocket libraries we use.

The tunnel's byte stream may be cut anywhere (see :mod:`alien.protocol.tunnel`), so all a
transport must do is carry binary messages in order, reliably, with backpressure: ``send`` waits
while the peer is not reading. The CLI and the agent dial the manager with our own client
(:mod:`alien.tunnel.websocket_client`), the manager accepts through FastAPI/Starlette; the
``websockets`` adapter (:mod:`alien.tunnel.websockets_transport`) serves the tests (its server
is a second, independent peer), and is kept apart so the CLI never imports ``websockets``.

Compression is off on purpose: tunnelled bodies are mostly compressed or encrypted already, and
per-message deflate would cost more CPU than the whole rest of the tunnel. The ``websockets``
adapter refuses a connection that negotiated it; the client options below never offer it, so a
Starlette server never agrees to it either.
"""

from __future__ import annotations

from typing import Any, Protocol

from alien.protocol.frames import Settings

MiB = 1024 * 1024

MAX_MESSAGE_SIZE = 1 * MiB
"""The largest WebSocket message the tunnel sends: big enough to amortise per-message costs,
small enough that one message never delays a stream's PING or credit for long."""

MAX_RECEIVED_MESSAGE = 4 * MAX_MESSAGE_SIZE
"""The largest message (or frame) accepted: room for a peer with a larger message cap."""
WRITE_LIMIT = MiB
"""Bytes the socket's write buffer may hold before ``send`` waits: a whole message, while the
next one is prepared."""

WEBSOCKET_OPTIONS: dict[str, Any] = {
    "compression": None,
    "max_size": MAX_RECEIVED_MESSAGE,
    "ping_interval": None,
    "write_limit": WRITE_LIMIT,
}
"""Keyword arguments for ``websockets.asyncio.client.connect`` and ``…server.serve``.

Keepalive is the tunnel's own PING (it travels the same path as the data and works behind
Starlette too), so the library's is off.
"""

WIDE_WINDOWS = Settings(initial_window=8 * MiB, connection_window=32 * MiB)
"""What every debug tunnel announces: each hop between the engineer's command and AWS is a
process woken by the one before it, and on a busy machine a wake-up can take milliseconds, so a
stream can move about one window per round of wake-ups. 1 MiB windows held a 200 MiB download
through the push tunnel to ~0.2x of direct on a loaded 2-core machine, 8 MiB to ~0.3-0.55x
(bench/debug_tunnel.py). Memory stays bounded by the connection window per tunnel."""


class MessageTransport(Protocol):
    """An ordered, reliable carrier of binary messages (a WebSocket, or a queue in tests).

    ``send`` and ``recv`` raise :class:`TunnelClosed` once the transport is closed or broken.
    """

    async def send(self, data: bytes | memoryview) -> None:
        """Send one message; waits while the peer is not keeping up."""
        ...

    async def recv(self) -> bytes:
        """The next message from the peer."""
        ...

    async def close(self) -> None:
        """Close cleanly: messages already sent are delivered first."""
        ...

    async def abort(self) -> None:
        """Drop the transport now, without waiting for anything."""
        ...
