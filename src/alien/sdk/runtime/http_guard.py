"""Only the platform may call a function's app: the ``ALIEN_HTTP_TOKEN`` check in front of it.

On the Unix socket the platform normally grants (0600, in its 0700 ``run/`` directory) no other
local user can even connect; on the loopback port an area too deep for a socket path gets
instead, every local process could, and this check is what keeps them out of a function the
stack made private (or away from a public one's ingress, which sets its ``X-Forwarded-*``). The
token is compared in constant time and removed from the request before the app runs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse

from alien.errors import Unauthenticated
from alien.protocol.function_http import HTTP_TOKEN_HEADER

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_HEADER = HTTP_TOKEN_HEADER.encode()


def platform_only(app: ASGIApp, token: str) -> ASGIApp:
    """``app`` behind the token check (lifespan events pass: they come from the runtime)."""
    expected = token.encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        supplied = [value for name, value in headers if name == _HEADER]
        if len(supplied) != 1 or not hmac.compare_digest(supplied[0], expected):
            await _refuse(scope, receive, send)
            return
        kept = [(name, value) for name, value in headers if name != _HEADER]
        await app({**scope, "headers": kept}, receive, send)

    return guarded


async def _refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # the handshake gets a 403
        return
    error = Unauthenticated("only the platform may call this function", field=HTTP_TOKEN_HEADER)
    await JSONResponse(error.to_dict(), status_code=error.status)(scope, receive, send)
