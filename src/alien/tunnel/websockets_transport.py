"""A ``websockets`` (asyncio API) connection as a tunnel message transport.

The tests' second, independent peer (a ``websockets`` server or client against ours). Apart from
:mod:`alien.tunnel.transport` because importing ``websockets`` costs ``alien debug`` ~30 ms of
its set-up, and nothing on its path uses it.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection as WebsocketsConnection
from websockets.exceptions import ConnectionClosed

from alien.errors import ValidationError
from alien.tunnel.errors import TunnelClosed


class WebsocketsTransport:
    """A ``websockets`` (asyncio API) client or server connection as a message transport."""

    def __init__(self, websocket: WebsocketsConnection) -> None:
        if websocket.protocol.extensions:
            names = ", ".join(ext.name for ext in websocket.protocol.extensions)
            raise ValidationError(
                f"the tunnel needs a WebSocket without extensions, this one negotiated {names}; "
                "connect with compression=None (see WEBSOCKET_OPTIONS)",
                field="compression",
            )
        self._ws = websocket

    async def send(self, data: bytes | memoryview) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise TunnelClosed(f"the WebSocket closed: {exc}") from None

    async def recv(self) -> bytes:
        try:
            return await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            raise TunnelClosed(f"the WebSocket closed: {exc}") from None

    async def close(self) -> None:
        await self._ws.close()

    async def abort(self) -> None:
        self._ws.transport.abort()
