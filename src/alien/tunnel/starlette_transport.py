"""An accepted Starlette/FastAPI ``WebSocket`` as a tunnel message transport (the manager's side).

Apart from :mod:`alien.tunnel.transport` so that the CLI, which dials with ``websockets``, does
not import Starlette.
"""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from alien.tunnel.errors import TunnelClosed


class StarletteTransport:
    """An accepted Starlette/FastAPI ``WebSocket`` as a message transport (the manager's side)."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def send(self, data: bytes | memoryview) -> None:
        try:
            await self._ws.send_bytes(bytes(data))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TunnelClosed(f"the WebSocket closed: {exc!r}") from None

    async def recv(self) -> bytes:
        try:
            message = await self._ws.receive()
        except (RuntimeError, OSError) as exc:
            raise TunnelClosed(f"the WebSocket closed: {exc!r}") from None
        if message["type"] == "websocket.disconnect":
            raise TunnelClosed(f"the WebSocket closed (code {message.get('code')})")
        data = message.get("bytes")
        if data is None:
            raise TunnelClosed("the peer sent a text message; the tunnel speaks binary only")
        return data

    async def close(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # already gone
            await self._ws.close()

    async def abort(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code=1011)
