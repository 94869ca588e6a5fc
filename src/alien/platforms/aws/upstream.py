"""The AWS re-signing upstream: allowlist, fresh credentials, re-sign, stream to AWS and back.

This is the manager's half of push-mode AWS debugging (the tunnel delivers requests to it), the
agent's in the pull model, and also what the loopback proxy can call directly when no tunnel is
involved. Refusals come back as AWS-shaped error responses, so the engineer's ``aws`` CLI prints
a readable reason.

A request goes through two steps, which callers that audit or mark refusals take one by one:
:meth:`AwsResigningUpstream.admit` (the allowlist and the credential screen; raises what it
refuses) and :meth:`AwsResigningUpstream.forward` (credentials, re-signing, the exchange). So
every request is screened exactly once, whoever wraps the re-signer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from alien.errors import AlienError, PlatformError
from alien.platforms.aws.credential_operations import screen_operations
from alien.platforms.aws.credentials import AwsCredentials
from alien.platforms.aws.endpoints import (
    AwsEndpointPolicy,
    AwsRoute,
    Resolver,
    botocore_endpoint,
    route_request,
)
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.http1 import ResponseError
from alien.platforms.aws.http1_client import Pool, Response
from alien.platforms.aws.resign import end_to_end_headers, resign_request
from alien.platforms.aws.signed_chunks import through
from alien.platforms.aws.sigv4 import CredentialScope, caller_scope
from alien.protocol.http_exchange import (
    Body,
    RequestHead,
    ResponseHead,
    UpstreamResponse,
    first_chunk,
    prepend,
)
from alien.tunnel.proxy_connect import describe

log = logging.getLogger(__name__)


class CredentialSource(Protocol):
    async def get(self) -> AwsCredentials: ...


async def _forwarded_body(body: Body) -> Body | None:
    """``None`` for a request without body bytes, so it is sent without a body rather than
    with an empty chunked one; otherwise the body with its first chunk put back. (Peeking costs
    nothing: a request without a body arrives already ended.)"""
    chunks = aiter(body)
    first = await first_chunk(chunks)
    return None if first is None else prepend(first, chunks)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Admitted:
    """A request the deployment's policy lets through: the route it takes, and the body to send
    in place of the caller's (the credential screen may have read its start)."""

    head: RequestHead
    body: Body
    route: AwsRoute


class AwsResigningUpstream:
    """Forwards authenticated debug requests to the deployment's allowed AWS endpoints."""

    def __init__(
        self,
        policy: AwsEndpointPolicy,
        credentials: CredentialSource,
        *,
        pool: Pool | None = None,
        resolve: Resolver = botocore_endpoint,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._policy = policy
        self._credentials = credentials
        self._pool = pool or Pool()
        self._owns_pool = pool is None
        self._resolve = resolve
        self._clock = clock

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        try:
            request = await self.admit(head, body)
        except AlienError as exc:
            return _refused(head, exc)
        return await self.forward(request)

    async def admit(
        self, head: RequestHead, body: Body, scope: CredentialScope | None = None
    ) -> Admitted:
        """The allowlist and the credential screen; raises ``AlienError`` for a refusal.
        ``scope``: the caller's credential scope when the caller parsed it already."""
        if scope is None:
            scope = caller_scope(head.target, head.headers)
        route = route_request(self._policy, scope.service, scope.region, resolve=self._resolve)
        return Admitted(head, await screen_operations(scope.service, head, body), route)

    async def forward(self, request: Admitted) -> UpstreamResponse:
        """Re-sign an admitted request with fresh credentials and exchange it with AWS; what
        fails on the way is answered AWS-shaped."""
        head, body = request.head, request.body
        try:
            credentials = await self._credentials.get()
            outgoing = resign_request(
                head.method,
                head.target,
                head.headers,
                route=request.route,
                credentials=credentials,
                now=self._clock(),
            )
        except AlienError as exc:
            return _refused(head, exc)
        if outgoing.chunks is not None:
            body = through(body, outgoing.chunks.resigner())
        try:
            response = await self._pool.request(
                outgoing.origin,
                outgoing.method,
                outgoing.target,  # byte for byte, never re-quoted or normalised
                outgoing.headers,
                await _forwarded_body(body),
            )
        except AlienError as exc:  # a malformed signed-chunk body: the upload is abandoned
            return _refused(head, exc)
        except (OSError, TimeoutError, ResponseError) as exc:
            error = PlatformError(
                f"could not reach {outgoing.origin}: {describe(exc)}",
                details={"aws_code": "ServiceUnavailable"},
            )
            return aws_error_response(head, error)
        return _upstream_response(response)

    async def aclose(self) -> None:
        if self._owns_pool:
            await self._pool.aclose()


def _refused(head: RequestHead, exc: AlienError) -> UpstreamResponse:
    log.info("refused %s %s: %s", head.method, head.target.partition("?")[0], exc.message)
    return aws_error_response(head, exc)


def _upstream_response(response: Response) -> UpstreamResponse:
    """AWS's answer as it came (hop-by-hop headers aside); closing it gives the connection back
    to the pool, or closes it if the body was not read to the end."""
    return UpstreamResponse(
        head=ResponseHead.create(
            response.status, end_to_end_headers(response.headers, frozenset())
        ),
        body=response.body,
        close=response.release,
    )
