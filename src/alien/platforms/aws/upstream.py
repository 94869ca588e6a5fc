"""The AWS re-signing upstream: allowlist, fresh credentials, re-sign, stream to AWS and back.

This is the manager's half of push-mode AWS debugging (the tunnel delivers requests to it), and
also what the loopback proxy can call directly when no tunnel is involved. Refusals come back as
AWS-shaped error responses, so the engineer's ``aws`` CLI prints a readable reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx

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
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse

log = logging.getLogger(__name__)


class CredentialSource(Protocol):
    async def get(self) -> AwsCredentials: ...


def aws_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """An AWS-shaped response for ``error``, in the protocol ``head``'s caller speaks."""
    status, headers, body = aws_error_for(head.headers, error)
    return UpstreamResponse.from_bytes(status, headers, body)


def upstream_client() -> httpx.AsyncClient:
    """An HTTP client that adds no headers of its own and never follows redirects: the request
    AWS sees is the caller's, re-signed, and nothing else."""
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, read=300.0, write=300.0),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )
    client.headers.clear()
    return client


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AwsResigningUpstream:
    """Forwards authenticated debug requests to the deployment's allowed AWS endpoints."""

    def __init__(
        self,
        policy: AwsEndpointPolicy,
        credentials: CredentialSource,
        *,
        client: httpx.AsyncClient | None = None,
        resolve: Resolver = botocore_endpoint,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._policy = policy
        self._credentials = credentials
        self._client = client or upstream_client()
        self._owns_client = client is None
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
        request = self._client.build_request(
            outgoing.method,
            outgoing.url,
            headers=list(outgoing.headers),
            content=body,
            extensions={"target": outgoing.target.encode("latin-1")},
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            error = PlatformError(
                f"could not reach {outgoing.origin}: {exc.__class__.__name__}",
                details={"aws_code": "ServiceUnavailable"},
            )
            return aws_error_response(head, error)
        return UpstreamResponse(
            head=ResponseHead.create(
                response.status_code,
                end_to_end_headers(response.headers.multi_items(), frozenset()),
            ),
            body=response.aiter_raw(),
            close=response.aclose,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
