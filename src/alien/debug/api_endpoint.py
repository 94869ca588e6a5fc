"""A loopback endpoint for a cloud API's own CLI (gcloud, kubectl) in a pull-model session.

The tool is pointed at 127.0.0.1 and authenticates with the session's token as its bearer token,
which the endpoint checks and removes (:class:`~alien.debug.auth.BearerTokenAuthenticator`). Each
request then goes through the tunnel as an absolute-form request to the API's own host, which
``route`` derives from the path the tool used; the deployment's agent decides whether that API is
reachable and sends the request with its own identity.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

from alien.debug.auth import BearerTokenAuthenticator
from alien.debug.proxy import ErrorResponder, LoopbackProxy
from alien.protocol.http_exchange import Body, RequestHead, Upstream, UpstreamResponse

Route = Callable[[str], tuple[str, str]]
"""A request target the tool sent → ``(host, absolute-form target)``; raises ``AlienError``
for a target that names no API."""


class Rerouted:
    """An ``Upstream`` sending each request on to ``upstream`` at the target and ``Host`` that
    ``route`` gives."""

    def __init__(self, upstream: Upstream, route: Route) -> None:
        self._upstream = upstream
        self._route = route

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        host, target = self._route(head.target)
        headers = head.with_header("host", host).headers
        return await self._upstream.send(RequestHead(head.method, target, headers), body)


async def api_endpoint(
    stack: contextlib.AsyncExitStack,
    upstream: Upstream,
    token: str,
    route: Route,
    *,
    error_response: ErrorResponder,
    ssl_context: ssl.SSLContext | None = None,
    upgrades: bool = False,
) -> LoopbackProxy:
    """Start the endpoint for the session (closed with ``stack``)."""
    proxy = LoopbackProxy(
        Rerouted(upstream, route),
        BearerTokenAuthenticator(token, headers=("authorization",)),
        error_response=error_response,
        ssl_context=ssl_context,
        upgrades=upgrades,
    )
    return await stack.enter_async_context(proxy)
