"""HTTP over tunnel streams: one request/response exchange per stream.

The layout of an exchange on a stream is in :mod:`alien.tunnel.http_heads`. Three roles use it:

* the CLI's loopback proxy sends each request through :class:`TunnelUpstream` (the debug
  ``Upstream`` interface, so the proxy does not know a tunnel is involved);
* whoever answers — the manager in push mode (with the AWS re-signer), the agent in pull mode
  (with :class:`~alien.tunnel.forward.ForwardingUpstream`) — runs :func:`serve_http_stream`
  with any ``Upstream`` for each stream the peer opens;
* the manager between the CLI and an agent does not parse HTTP at all: it opens a stream on the
  agent's connection with the same metadata and :func:`~alien.tunnel.relay.relay`\\ s the two.

Bodies stream both ways as DATA with the tunnel's flow control: no size cap, no buffering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from alien.debug.proxy import alien_error_response
from alien.errors import AlienError
from alien.protocol.errors import TunnelError
from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, Upstream, UpstreamResponse
from alien.tunnel.connection import TunnelConnection
from alien.tunnel.http_heads import (
    UPSTREAM_FAILED,
    encode_response_head,
    parse_request_meta,
    read_response_head,
    request_meta,
)
from alien.tunnel.relay import RelayResult, relay
from alien.tunnel.stream import TunnelStream

__all__ = [
    "UPSTREAM_FAILED",
    "ErrorResponder",
    "RelayResult",
    "TunnelUpstream",
    "http_handler",
    "relay",
    "serve_http_stream",
]

log = logging.getLogger(__name__)

REQUEST_END_GRACE = 1.0
"""Seconds a request body still being sent gets to end once its response has ended whole."""

ErrorResponder = Callable[[RequestHead, AlienError], UpstreamResponse]


class TunnelUpstream:
    """The debug proxy's ``Upstream`` over a tunnel: each request is one stream on ``connection``.

    The request body is sent while the response is awaited (a server may answer before it has
    read the body), and the response body is read as the proxy forwards it. A request without a
    body goes out as OPEN and END in one message: the far side can answer it at once, and no
    task is spent pumping an empty body.
    """

    def __init__(self, connection: TunnelConnection) -> None:
        self._connection = connection

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        stream = await self._connection.open_stream(request_meta(head))
        pump: asyncio.Task[None] | None = None
        try:
            if _bodiless(head):
                await stream.end()  # queued with the OPEN: nothing else to send
                response_head = await read_response_head(stream)
            else:
                pump = asyncio.create_task(
                    _send_body(stream, body), name=f"tunnel-body-{stream.id}"
                )
                response_head = await _head_unless_body_fails(stream, pump)
        except BaseException:
            await _finish(stream, pump, "the request was abandoned")
            raise

        async def close() -> None:
            if pump is not None and stream.remote_ended and not pump.done():
                # The response is whole and the request's end is usually a moment behind it
                # (a CONNECT client closes once it has read the answer): let it arrive, so
                # the stream ends cleanly instead of being recorded as cut.
                await asyncio.wait({pump}, timeout=REQUEST_END_GRACE)
            await _finish(stream, pump, "the response was abandoned")

        return UpstreamResponse(head=response_head, body=aiter(stream), close=close)


_BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _bodiless(head: RequestHead) -> bool:
    """A request that has no body by its head alone (RFC 9112 6.3: neither a length nor a
    transfer coding). Only for methods that normally have none: a ``CONNECT``'s bytes follow
    its answer, and so do an upgraded connection's, and a POST from a hand-made head may lack
    the length."""
    return (
        head.method in _BODILESS_METHODS
        and head.get("content-length") is None
        and head.get("transfer-encoding") is None
        and head.get("upgrade") is None
    )


def replayable(head: RequestHead) -> bool:
    """A request that may be sent again when its tunnel was lost before any answer: a safe
    method (RFC 9110 9.2.1: asking twice changes nothing) without a body to replay."""
    return head.method in _SAFE_METHODS and _bodiless(head)


async def _send_body(stream: TunnelStream, body: Body) -> None:
    """Stream the request body, then END. A failing body source resets the stream (so the far
    side never takes a cut body for a whole one) and its error propagates."""
    closing = contextlib.aclosing(body) if hasattr(body, "aclose") else contextlib.nullcontext()
    async with closing:
        try:
            async for chunk in body:
                await stream.send(chunk)
            if not stream.local_ended:
                await stream.end()
        except TunnelError:
            return  # the stream failed: reading the response reports why
        except BaseException as exc:
            reason = "the request body failed"
            if isinstance(exc, AlienError):  # say why to the far side (for its log)
                reason += f": {exc.message}"
            await stream.reset(ErrorCode.CANCEL, reason)
            raise


async def _head_unless_body_fails(stream: TunnelStream, pump: asyncio.Task[None]) -> ResponseHead:
    """The response head; if the request body fails first, its error (the request is void)."""
    head_task = asyncio.create_task(read_response_head(stream))
    try:
        while True:
            waiting = {head_task} if pump.done() else {head_task, pump}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            error = pump.exception() if pump.done() else None
            if error is not None:  # first: the reset it caused also ended the head's read
                raise error
            if head_task.done():
                return head_task.result()
    finally:
        head_task.cancel()


async def _finish(stream: TunnelStream, pump: asyncio.Task[None] | None, reason: str) -> None:
    await stream.reset(ErrorCode.CANCEL, reason)
    if pump is not None:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump


async def serve_http_stream(
    stream: TunnelStream,
    upstream: Upstream,
    *,
    error_response: ErrorResponder = alien_error_response,
) -> None:
    """Answer the HTTP request on ``stream`` (opened by the peer) with ``upstream``.

    An upstream that raises an ``AlienError`` is answered with ``error_response`` (alien's JSON
    error shape by default; pass e.g. the AWS-shaped one for AWS clients); one that fails after
    the head was sent resets the stream with :data:`UPSTREAM_FAILED`. A request body the upstream
    did not read is refused after the response (a RESET with ``NO_ERROR``), like HTTP/2 does.
    """
    try:
        head = parse_request_meta(stream.meta)
    except AlienError as exc:
        await stream.reset(ErrorCode.INVALID_METADATA, exc.message)
        return
    response = await _ask(stream, upstream, head, error_response)
    if response is None:
        return
    try:
        await stream.send(encode_response_head(response.head))
        async for chunk in response.body:
            await stream.send(chunk)
        await stream.end()
    except Exception as exc:
        if stream.error is None:
            log.warning("the response to stream %d failed: %r", stream.id, exc)
            await stream.reset(UPSTREAM_FAILED, "the upstream response failed")
    finally:
        await response.aclose()
    await stream.reset(ErrorCode.NO_ERROR, "the response is complete")


async def _ask(
    stream: TunnelStream, upstream: Upstream, head: RequestHead, error_response: ErrorResponder
) -> UpstreamResponse | None:
    """The upstream's response, an error response, or ``None`` if the requester is gone."""
    try:
        return await upstream.send(head, aiter(stream))
    except Exception as exc:
        if stream.error is not None:
            log.debug("stream %d ended before its response: %s", stream.id, stream.error)
            return None
        if isinstance(exc, AlienError):
            return error_response(head, exc)
        log.exception("the upstream failed on stream %d", stream.id)
        return error_response(head, AlienError("the upstream failed"))


def http_handler(
    upstream: Upstream, *, error_response: ErrorResponder = alien_error_response
) -> Callable[[TunnelStream], Awaitable[None]]:
    """A ``TunnelConnection`` handler serving every incoming stream with ``upstream``."""

    async def handle(stream: TunnelStream) -> None:
        await serve_http_stream(stream, upstream, error_response=error_response)

    return handle
