"""The loopback endpoint ``az storage`` talks to in a pull-model session that offers Azure blobs.

``az`` gets a connection string naming the deployment's storage account with the session's
dummy account key and this endpoint as the blob endpoint (:func:`alien.debug.env.
azure_storage_env`), so it signs every call with Shared Key, as it would for the real account.
The endpoint checks that signature with the dummy key — only the session's child holds it — and
removes it; each call then goes through the tunnel as what it is, an absolute-form request to
``https://<account>.blob.core.windows.net``, and the deployment's agent signs it with the real
key (:mod:`alien.platforms.azure.upstream`).

Stdlib only beyond what ``alien debug`` already loads: this is on the session's set-up path.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from alien.debug.api_endpoint import Rerouted, Route
from alien.debug.proxy import LoopbackProxy
from alien.errors import ValidationError
from alien.platforms.azure.error_shape import azure_error_response
from alien.platforms.azure.shared_key import parse_key, verify
from alien.protocol.http_exchange import Body, RequestHead, Upstream


class SharedKeySessionAuthenticator:
    """Accepts a call only if it is signed (Shared Key) for ``account`` with the session's key."""

    def __init__(self, account: str, key: str) -> None:
        self._account = account
        self._key = parse_key(key, "azure")

    def __repr__(self) -> str:  # never the key
        return f"SharedKeySessionAuthenticator(account={self._account!r})"

    async def authenticate(self, head: RequestHead, body: Body) -> tuple[RequestHead, Body]:
        verify(head, self._account, self._key, datetime.now(UTC))
        kept = tuple((k, v) for k, v in head.headers if k != "authorization")
        return RequestHead(head.method, head.target, kept), body


def blob_route(account: str) -> Route:
    """Where a call ``az`` sent to this endpoint goes: the account's public blob host, the path
    and query as sent (the agent maps it to the account's real endpoint)."""
    host = f"{account}.blob.core.windows.net"

    def route(target: str) -> tuple[str, str]:
        plain = target.isascii() and target.isprintable() and " " not in target
        if not target.startswith("/") or not plain:
            raise ValidationError("the request target is not a plain URL path", field="target")
        return host, f"https://{host}{target}"

    return route


async def azure_blob_endpoint(
    stack: contextlib.AsyncExitStack, upstream: Upstream, account: str, key: str
) -> LoopbackProxy:
    """Start the endpoint for the session (closed with ``stack``)."""
    proxy = LoopbackProxy(
        Rerouted(upstream, blob_route(account)),
        SharedKeySessionAuthenticator(account, key),
        error_response=azure_error_response,
    )
    return await stack.enter_async_context(proxy)
