"""The command control API a function process serves to its platform (ARCHITECTURE.md).

Internal, never on the app's port, and every request must carry the per-process secret
(``Authorization: Bearer <ALIEN_CONTROL_TOKEN>``, compared in constant time) — checked before the
body is read. Routes:

* ``GET  /v1/commands`` → ``{"function", "commands": [names], "running": [command ids]}``
* ``POST /v1/commands/invoke`` with ``{"envelope": CommandEnvelope, "params"?: {...},
  "include_traceback"?: bool}`` → the ``CommandResponse`` (200 for every command outcome,
  failures included). ``params`` is how a caller passes params the envelope holds only by
  ``params_ref``: the caller downloads and verifies the blob, then sends the params here, so the
  function never needs network access to the blob store. Giving both inline params and ``params``
  is refused. A result too large to travel inline is answered as the bare result document
  (header ``Alien-Result: document``) unless an ``offload`` hook stores it in-process: the caller
  stores it and answers with ``result_ref``.
* ``POST /v1/commands/{command_id}/cancel`` → ``{"cancelled": true}``; 404 ``COMMAND_NOT_FOUND``
  if that command is not running here.

A caller that goes away mid-invoke cancels the handler (its context's signal): nobody would read
the answer. One command id runs at most once at a time per process (409 ``CONFLICT``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alien.errors import (
    AlienError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    ValidationError,
)
from alien.protocol.command_messages import COMMAND_NOT_FOUND, BlobRef, CommandEnvelope
from alien.protocol.wire import WireModel, parse
from alien.sdk.command_context import CommandContext
from alien.sdk.commands import known_commands, run_command

log = logging.getLogger("alien.runtime.control")

MAX_BODY_BYTES = 1024 * 1024 * 1024
"""Largest invoke body: params resolved from a blob can exceed the inline limit by far (the
manager accepts params documents of gigabytes); the handler gets them as one object, so the
process must hold them anyway — this bound only keeps a runaway caller from exhausting it."""
RESULT_HEADER = "alien-result"
"""Response header marking a body that is the result document, not a ``CommandResponse``."""

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Offload = Callable[[bytes], Awaitable[BlobRef]]


class InvokeRequest(WireModel):
    envelope: CommandEnvelope
    params: dict[str, JsonValue] | None = None
    include_traceback: bool = False


class _HandBack(Exception):
    """Raised by the default offload: the caller stores the result document itself."""

    def __init__(self, document: bytes) -> None:
        super().__init__(f"a result document of {len(document)} bytes")
        self.document = document


async def _hand_back(document: bytes) -> BlobRef:
    raise _HandBack(document)


class RunningCommands:
    """The commands this process is running, by id: what ``cancel`` reaches."""

    def __init__(self) -> None:
        self._contexts: dict[str, CommandContext] = {}

    def add(self, context: CommandContext) -> None:
        if context.command_id in self._contexts:
            raise Conflict(
                f"command {context.command_id} is already running in this process",
                field="envelope.id",
            )
        self._contexts[context.command_id] = context

    def remove(self, context: CommandContext) -> None:
        if self._contexts.get(context.command_id) is context:
            del self._contexts[context.command_id]

    def cancel(self, command_id: str, reason: str) -> None:
        context = self._contexts.get(command_id)
        if context is None:
            raise NotFound(
                f"command {command_id} is not running in this process",
                field="command_id",
                code=COMMAND_NOT_FOUND,
            )
        context.cancel(reason)

    def ids(self) -> list[str]:
        return sorted(self._contexts)


def control_app(
    function: str,
    token: str,
    *,
    offload: Offload | None = None,
    running: RunningCommands | None = None,
) -> ASGIApp:
    """The authenticated control API of function ``function`` (see the module docstring).

    ``offload`` is the hook for a runtime that can store large results itself; without it they
    are handed back to the caller.
    """
    commands = running if running is not None else RunningCommands()

    async def list_commands(request: Request) -> Response:
        body = {"function": function, "commands": known_commands(), "running": commands.ids()}
        return JSONResponse(body)

    async def invoke(request: Request) -> Response:
        call = parse(InvokeRequest, await _read_body(request))
        envelope = call.envelope
        context = CommandContext.from_envelope(envelope)
        commands.add(context)
        watcher = asyncio.create_task(_cancel_on_disconnect(request, context))
        try:
            response = await run_command(
                envelope.command,
                _params_of(call),
                context,
                include_traceback=call.include_traceback,
                offload=offload or _hand_back,
            )
        except _HandBack as large:
            log.info("command %r (%s) succeeded; large result", envelope.command, envelope.id)
            return Response(
                large.document,
                media_type="application/json",
                headers={
                    RESULT_HEADER: "document",
                    "alien-command-id": envelope.id,
                    "alien-lease-id": envelope.lease_id,
                },
            )
        finally:
            watcher.cancel()
            commands.remove(context)
        return Response(response.model_dump_json(), media_type="application/json")

    async def cancel(request: Request) -> Response:
        commands.cancel(request.path_params["command_id"], "the command was cancelled")
        return JSONResponse({"cancelled": True})

    app = Starlette(
        routes=[
            Route("/v1/commands", list_commands, methods=["GET"]),
            Route("/v1/commands/invoke", invoke, methods=["POST"]),
            Route("/v1/commands/{command_id}/cancel", cancel, methods=["POST"]),
        ],
        exception_handlers={AlienError: _alien_error, HTTPException: _http_error},
    )
    return _require_token(app, token)


def _params_of(call: InvokeRequest) -> dict[str, Any]:
    envelope = call.envelope
    if call.params is not None and envelope.params is not None:
        raise ValidationError(
            "params are given both inline in the envelope and beside it; send them once",
            field="params",
        )
    params = call.params if call.params is not None else envelope.params
    if params is None:
        raise ValidationError(
            "the envelope holds its params by params_ref: resolve the blob and send them as "
            "'params' beside the envelope",
            field="params",
        )
    return params


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


async def _cancel_on_disconnect(request: Request, context: CommandContext) -> None:
    """Once the body is read, the next message is the caller's disconnect (if it comes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            if context.cancel("the caller went away"):
                log.info("command %s: the caller disconnected; cancelling", context.command_id)
            return


def _require_token(app: ASGIApp, token: str) -> ASGIApp:
    expected = token.encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no websockets, and lifespan is off: nothing else is served
        supplied = _bearer(scope)
        if supplied is None or not hmac.compare_digest(supplied, expected):
            # Which of the two it was is not said: a prober learns nothing either way.
            error = Unauthenticated("a valid control token is required", field="authorization")
            await _error_response(error)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def _bearer(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            return credentials.strip() if scheme.lower() == b"bearer" else None
    return None


def _error_response(error: AlienError) -> Response:
    return JSONResponse(error.to_dict(), status_code=error.status)


async def _alien_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AlienError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    error = AlienError(str(exc.detail), code=code)
    return JSONResponse(error.to_dict(), status_code=exc.status_code)
