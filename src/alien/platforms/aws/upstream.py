"""The AWS re-signing upstream: allowlist, fresh credentials, re-sign, stream to AWS and back.

This is the manager's half of push-mode AWS debugging (the tunnel delivers requests to it), and
also what the loopback proxy can call directly when no tunnel is involved. Refusals come back as
AWS-shaped error responses, so the engineer's ``aws`` CLI prints a readable reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from yarl import URL

from alien.errors import AlienError, PlatformError
from alien.platforms.aws.credentials import AwsCredentials
from alien.platforms.aws.endpoints import (
    AwsEndpointPolicy,
    Resolver,
    botocore_endpoint,
    route_request,
)
from alien.platforms.aws.error_shape import aws_error_for
from alien.platforms.aws.resign import end_to_end_headers, resign_request
from alien.platforms.aws.sigv4 import caller_scope
from alien.protocol.http_exchange import (
    Body,
    RequestHead,
    ResponseHead,
    UpstreamResponse,
    first_chunk,
    prepend,
)

log = logging.getLogger(__name__)


class CredentialSource(Protocol):
    async def get(self) -> AwsCredentials: ...


def aws_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """An AWS-shaped response for ``error``, in the protocol ``head``'s caller speaks."""
    status, headers, body = aws_error_for(head.headers, error)
    return UpstreamResponse.from_bytes(status, headers, body)


READ_BUFFER = 256 * 1024
"""aiohttp's per-connection read buffer: big reads keep the per-chunk cost of a bulk download
(a task wake-up and a tunnel frame per chunk) small."""


AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
"""Headers aiohttp would add on its own (a request carries only what the caller sent)."""


def upstream_session() -> aiohttp.ClientSession:
    """An HTTP client that adds no headers of its own, never follows redirects and never
    decompresses: the request AWS sees is the caller's, re-signed, and the caller gets AWS's
    bytes. (aiohttp rather than httpx: a bulk download costs it a fraction of the CPU.)"""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64),
        timeout=aiohttp.ClientTimeout(total=None, connect=30.0, sock_read=300.0),
        auto_decompress=False,
        skip_auto_headers=AUTO_HEADERS,
        read_bufsize=READ_BUFFER,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def _forwarded_body(body: Body) -> Body | None:
    """``None`` for a request without body bytes, so it is sent without a body rather than
    with an empty chunked one; otherwise the body with its first chunk put back. (Peeking costs
    nothing: a request without a body arrives already ended.)"""
    chunks = aiter(body)
    first = await first_chunk(chunks)
    return None if first is None else prepend(first, chunks)


async def _stream(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in response.content.iter_any():
        yield chunk


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AwsResigningUpstream:
    """Forwards authenticated debug requests to the deployment's allowed AWS endpoints."""

    def __init__(
        self,
        policy: AwsEndpointPolicy,
        credentials: CredentialSource,
        *,
        session: aiohttp.ClientSession | None = None,
        resolve: Resolver = botocore_endpoint,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._policy = policy
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._resolve = resolve
        self._clock = clock

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        try:
            scope = caller_scope(head.target, head.headers)
            route = route_request(self._policy, scope.service, scope.region, resolve=self._resolve)
            credentials = await self._credentials.get()
            outgoing = resign_request(
                head.method,
                head.target,
                head.headers,
                route=route,
                credentials=credentials,
                now=self._clock(),
            )
        except AlienError as exc:
            log.info("refused %s %s: %s", head.method, head.target.partition("?")[0], exc.message)
            return aws_error_response(head, exc)
        if self._session is None:  # made here: aiohttp wants a running loop
            self._session = upstream_session()
        try:
            response = await self._session.request(
                outgoing.method,
                URL(outgoing.url, encoded=True),  # the target byte for byte, not re-quoted
                headers=list(outgoing.headers),
                data=await _forwarded_body(body),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = PlatformError(
                f"could not reach {outgoing.origin}: {exc.__class__.__name__}",
                details={"aws_code": "ServiceUnavailable"},
            )
            return aws_error_response(head, error)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        return UpstreamResponse(
            head=ResponseHead.create(response.status, end_to_end_headers(headers, frozenset())),
            body=_stream(response),
            close=_releaser(response),
        )

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()


def _releaser(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    """Give the connection back to the pool (closed instead if the body was not read to the
    end, so no half-read response is reused)."""

    async def release() -> None:
        response.release()

    return release
