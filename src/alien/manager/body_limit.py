"""A bound on every request body the manager reads whole: an answer before the memory goes.

FastAPI parses a JSON body (and this process's fast create path reads one) before any token is
looked at, so without a bound anyone who can reach the port could make the manager hold
hundreds of megabytes per request. Bodies over :data:`MAX_BODY` are refused with 413
``PAYLOAD_TOO_LARGE`` (our error shape, field ``body``): at once when ``Content-Length`` says
so, else as soon as that many bytes came. The routes that stream uploads to the blob stores
(:data:`STREAMED`) are left alone: they never hold a body, and each stops at its own configured
size limit.

Hand-written rather than FastAPI's ``max_body_size``: that one answers ``{"detail": …}``,
not the error shape every other refusal of the API has.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alien.errors import PayloadTooLarge
from alien.manager.api.errors import error_response

MAX_BODY = 4 * 1024 * 1024
"""The largest body read whole: a command's inline params (≤ 256 KiB) or result, a release's
manifest, an agent's status are far below it."""

STREAMED = re.compile(r"/v1/(blobs|commands/payloads|command-blobs/[^/]+/result)")
"""Upload routes that stream the body to disk under a limit of their own."""


class BodyLimit:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or STREAMED.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        tripped = started = False

        async def limited() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    tripped = True
                    raise self._too_large()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if tripped:  # the app's own answer to a body cut short (FastAPI: a 400) is ours
                if not started and message["type"] == "http.response.start":
                    started = True
                    await self._refuse(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except PayloadTooLarge:
            if not tripped or started:
                raise
            await self._refuse(scope, receive, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request bodies are limited to {self.max_body} bytes", field="body")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self._too_large()
        await error_response(error.to_dict(), error.status)(scope, receive, send)
