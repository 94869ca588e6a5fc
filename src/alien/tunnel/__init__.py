"""The asyncio tunnel: many flow-controlled byte streams over one WebSocket (or any transport).

Layers, bottom up:

* :mod:`alien.protocol.tunnel` (not here) — the sans-I/O wire protocol: frames, streams, credit;
* :mod:`~alien.tunnel.transport` — the message transport interface
  (:mod:`~alien.tunnel.websockets_transport`: ``websockets`` connections, the tests' peer;
  :mod:`~alien.tunnel.starlette_transport`: Starlette/FastAPI WebSockets, the manager's side;
  :mod:`~alien.tunnel.websocket_client`: our own client, the
  CLI's and the agent's dial; :mod:`~alien.tunnel.memory`: an in-memory pair for tests);
* :mod:`~alien.tunnel.connection` / :mod:`~alien.tunnel.stream` — :class:`TunnelConnection`
  drives the protocol over a transport; :class:`TunnelStream` is one stream with backpressure;
* :mod:`~alien.tunnel.http` — HTTP exchanges on streams (the debug proxy's ``TunnelUpstream``,
  ``serve_http_stream`` for the answering side, ``relay`` for the manager between CLI and agent,
  ``ForwardingUpstream`` for the agent's allowlisted egress); the on-stream layout of a request
  and response is specified in :mod:`~alien.tunnel.http_heads`.

A typical client::

    websocket = await websocket_client.dial(url, {"Authorization": ...}, timeout=15)
    async with TunnelConnection(websocket, "client") as conn:
        response = await TunnelUpstream(conn).send(head, body)
"""

from alien.tunnel.connection import StreamHandler, TunnelConnection
from alien.tunnel.errors import TunnelClosed, TunnelMessageError, TunnelStreamReset
from alien.tunnel.memory import MemoryTransport, memory_pair
from alien.tunnel.stream import TunnelStream
from alien.tunnel.transport import (
    MAX_MESSAGE_SIZE,
    WEBSOCKET_OPTIONS,
    WIDE_WINDOWS,
    MessageTransport,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "WEBSOCKET_OPTIONS",
    "WIDE_WINDOWS",
    "MemoryTransport",
    "MessageTransport",
    "StreamHandler",
    "TunnelClosed",
    "TunnelConnection",
    "TunnelMessageError",
    "TunnelStream",
    "TunnelStreamReset",
    "memory_pair",
]
