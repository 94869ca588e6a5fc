"""``POST /v1/commands`` answered below FastAPI's routing and dependency machinery.

Why: creating a command is the manager's hottest request, and a lone round trip of a quick
command is what a caller waits on. Of the manager's CPU for one, about 0.5 ms went to the
framework around the route — a dozen middleware and routing layers, the route's dependency
graph, the request and response objects — which is as much as the command's own database
transaction. This middleware answers, through the same :class:`CommandCenter` call and the same
response encoding, the requests it can answer exactly as the FastAPI route would: a JSON body
that validates as :class:`CommandCreate`, a bearer token of our form, and no query parameter but
a valid ``wait``.

Everything else — no or a malformed token, a body that is not JSON or does not validate, another
parameter, a body over :data:`MAX_FAST_BODY` — is handed on untouched (the body read so far is
replayed) to the FastAPI route, which stays the one definition of the route's errors and of its
OpenAPI document.
"""

from __future__ import annotations

import json
import math

from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alien.errors import AlienError, Unauthenticated
from alien.manager.api.commands import base_url, checked_wait, json_response
from alien.manager.api.deps import presented_token
from alien.manager.api.errors import error_response
from alien.manager.commands.center import center_of
from alien.manager.commands.schemas import CommandCreate

PATH = "/v1/commands"
MAX_FAST_BODY = 1024 * 1024
"""Larger bodies go the FastAPI way (inline params are at most 256 KiB anyway)."""


class FastCreate:
    """ASGI middleware in front of the app's routes (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        http = Request(scope, receive)
        parsed = _parsed(http)
        if parsed is None:
            await self.app(scope, receive, send)
            return
        token, wait = parsed
        chunks, complete, size = await _body(receive)
        body = _command(b"".join(chunks)) if complete and size <= MAX_FAST_BODY else None
        if body is None:
            await self.app(scope, _replay(chunks, complete, receive), send)
            return
        center = center_of(http)
        try:
            created = await center.create(token, body, wait=checked_wait(center, wait))
        except AlienError as exc:
            response = error_response(exc.to_dict(), exc.status)
        else:
            view = center.view(created.snapshot, base_url(http))
            response = json_response(view, 200 if created.replayed else 201)
        await response(scope, receive, send)


def _parsed(request: Request) -> tuple[str, float] | None:
    """The token and ``wait`` of a request this path can take, else ``None``. Read as the route
    reads them: its own token check, Starlette's headers and query parameters."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    try:
        token = presented_token(request)
    except Unauthenticated:  # the route's 401 says what is wrong with the header
        return None
    params = request.query_params.multi_items()
    if not params:
        return token, 0.0
    if len(params) != 1 or params[0][0] != "wait":
        return None
    text = params[0][1]
    if not text.isascii():  # float() reads other scripts' digits; the route does not
        return None
    try:
        wait = float(text)
    except ValueError:
        return None
    if not math.isfinite(wait) or wait < 0:
        return None
    return token, wait


async def _body(receive: Receive) -> tuple[list[bytes], bool, int]:
    """The body's chunks, whether that is all of it, and their size (reading stops once past
    :data:`MAX_FAST_BODY`)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # a disconnect (uvicorn repeats it to the app)
            return chunks, False, size
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True, size
        if size > MAX_FAST_BODY:
            return chunks, False, size


def _command(raw: bytes) -> CommandCreate | None:
    """The body as the route would validate it (``json.loads``, then the model), else ``None``."""
    try:
        return CommandCreate.model_validate(json.loads(raw))
    except (ValueError, PydanticValidationError):  # JSONDecodeError and UnicodeDecodeError too
        return None


def _replay(chunks: list[bytes], complete: bool, receive: Receive) -> Receive:
    """``receive`` for the app: the chunks already read, then whatever is still to come."""
    pending = list(chunks)

    async def replay() -> Message:
        if pending:
            chunk = pending.pop(0)
            more = bool(pending) or not complete
            return {"type": "http.request", "body": chunk, "more_body": more}
        return await receive()

    return replay
