"""A request that upgrades its connection (``kubectl exec``, ``attach``, ``port-forward``), sent by
the agent to the cluster's API server and carried on as raw bytes both ways.

Why by hand: httpx (the agent's forwarding client) does not hand over a connection after
``101 Switching Protocols``. Here the agent opens a TLS connection of its own (the cluster's CA),
writes the request head — the agent's token in place of the session's, the end-to-end headers as
the client sent them (the ``Sec-WebSocket-*`` ones included), ``Connection: Upgrade`` and the
client's ``Upgrade``, no other hop-by-hop header — and reads the answer's
head. On ``101`` the tunnel stream then carries the upgraded protocol as it is: the request body
is what the client sends after the handshake, the response body what the API server sends.
Whatever the protocol (WebSocket for kubectl 1.30+, SPDY for older clients), the agent does not
parse it. Any other answer (403, 404, …) is passed back as an ordinary response.

The connection follows the environment's proxy as every other of the agent's does
(:func:`~alien.tunnel.proxy_connect.http_proxy`): an in-cluster API server is usually exempted
by ``NO_PROXY``; otherwise the TLS connection runs inside a ``CONNECT`` tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

from alien.errors import AlienError
from alien.platforms.aws.http1 import request_head
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse
from alien.tunnel.forward import end_to_end
from alien.tunnel.proxy_connect import http_proxy, open_connection

MAX_HEAD = 64 * 1024
"""The largest response head accepted from the API server."""
READ_SIZE = 256 * 1024
CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 30.0
"""Seconds the API server has to answer an upgrade request (it answers before any exec runs)."""
CLIENT_GONE_GRACE = 1.0
"""Seconds the API server gets to finish its side after the client's side ended (TLS cannot be
half-closed); then the connection is closed, and with it the exec or port-forward."""


class UpgradeFailed(AlienError):
    code = "UPSTREAM_UNREACHABLE"
    status = 502


async def send_upgrade(
    head: RequestHead, body: Body, *, host: str, port: int, tls: ssl.SSLContext
) -> UpstreamResponse:
    """Send ``head`` (origin form, credentials final) to ``host:port`` over TLS; see the module
    doc."""
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host
    authority = name if port == 443 else f"{name}:{port}"
    raw_head = request_head(head.method, head.target, _handshake_headers(head, authority))
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            proxy = http_proxy(True, host, port)
            reader, writer = await open_connection(
                host, port, proxy, ssl=tls, server_hostname=host, limit=MAX_HEAD
            )
    except (OSError, TimeoutError) as exc:
        raise UpgradeFailed(
            f"the cluster's API server could not be reached: {exc or type(exc).__name__}",
            field="kubernetes.server",
        ) from None
    try:
        writer.write(raw_head)
        async with asyncio.timeout(ANSWER_TIMEOUT):
            response = await _read_head(reader)
    except TimeoutError:
        writer.close()
        raise UpgradeFailed(
            f"the cluster's API server did not answer within {ANSWER_TIMEOUT:g} s",
            field="kubernetes.server",
        ) from None
    except BaseException:
        writer.close()
        raise
    if response.status != 101:  # refused (403, 404, 400…): an ordinary answer
        try:
            content = await _content(reader, response)
        finally:
            writer.close()
        return UpstreamResponse.from_bytes(response.status, response.headers, content)
    pump = asyncio.create_task(_pump(body, writer), name="kubernetes-upgrade-request")

    async def close() -> None:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    return UpstreamResponse(head=response, body=_read_all(reader), close=close)


def _handshake_headers(head: RequestHead, authority: str) -> list[tuple[str, str]]:
    """``head``'s headers as the API server gets them: ``Host``, the end-to-end ones, then the
    upgrade. Hop-by-hop headers — a ``Proxy-Authorization`` of the caller's, those its
    ``Connection`` names — are for the hop to the agent, as on every other path; of them only
    what makes the upgrade goes on."""
    kept = [(k, v) for k, v in end_to_end(head.headers) if k != "host"]
    upgrade = head.get("upgrade") or ""
    return [("host", authority), *kept, ("connection", "Upgrade"), ("upgrade", upgrade)]


async def _read_head(reader: asyncio.StreamReader) -> ResponseHead:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
        raise UpgradeFailed(
            f"the cluster's API server sent no usable answer: {type(exc).__name__}",
            field="kubernetes.server",
        ) from None
    status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpgradeFailed(
            "the cluster's API server did not answer in HTTP/1.1", field="kubernetes.server"
        )
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise UpgradeFailed("a malformed header from the API server", field="kubernetes.server")
        headers.append((name.strip(), value.strip()))
    return ResponseHead.create(int(parts[1]), headers)


async def _content(reader: asyncio.StreamReader, head: ResponseHead) -> bytes:
    """The body of an answer that did not switch protocols (an error: its length is given;
    without one, up to the connection's end)."""
    length = head.get("content-length")
    try:
        if length is not None and length.isdigit():
            return await reader.readexactly(min(int(length), MAX_HEAD))
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await reader.read(MAX_HEAD)
    except (asyncio.IncompleteReadError, OSError, TimeoutError):
        return b""


async def _pump(body: Body, writer: asyncio.StreamWriter) -> None:
    """What the client sends after the handshake, to the API server; then the connection is
    closed — at once when the client's side broke off (reset: ``kubectl`` interrupted),
    :data:`CLIENT_GONE_GRACE` later when it ended — so an exec or a port-forward does not
    outlive its client until the API server's own timeout (hours)."""
    try:
        async for chunk in body:
            writer.write(chunk)
            await writer.drain()
    except Exception:
        writer.close()
        return
    await asyncio.sleep(CLIENT_GONE_GRACE)
    writer.close()


async def _read_all(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(READ_SIZE):
        yield chunk
