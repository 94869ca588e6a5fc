"""Bearer-token authentication for the loopback proxy (gcloud, kubectl, plain HTTP clients).

Tools that are not AWS prove they hold the session secret by presenting its bearer token, either
as ``Authorization: Bearer`` (gcloud, kubectl) or in ``Proxy-Authorization`` (clients configured
through ``HTTP_PROXY=http://alien:TOKEN@127.0.0.1:PORT``, which send Basic credentials). The token
is removed before the request goes on: the upstream authenticates with its own identity.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from alien.errors import Unauthenticated
from alien.protocol.http_exchange import Body, RequestHead

_AUTH_HEADERS = ("authorization", "proxy-authorization")


def presented_token(value: str) -> str | None:
    """The token in a ``Bearer TOKEN`` or ``Basic base64(user:TOKEN)`` credential, else None."""
    scheme, _, credential = value.strip().partition(" ")
    scheme = scheme.lower()
    credential = credential.strip()
    if scheme == "bearer" and credential:
        return credential
    if scheme == "basic" and credential:
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep else None
    return None


class BearerTokenAuthenticator:
    """Accepts a request only if one of its auth headers carries the session's token."""

    def __init__(self, token: str, *, headers: tuple[str, ...] = _AUTH_HEADERS) -> None:
        """``headers``: where the token may be (and is removed from); a forward proxy passes
        ``("proxy-authorization",)`` so the client's own ``Authorization`` reaches the
        destination untouched."""
        if len(token) < 16:
            raise ValueError("a session token must have at least 16 characters")
        self._token = token.encode()
        self._headers = tuple(h.lower() for h in headers)

    def __repr__(self) -> str:
        return "BearerTokenAuthenticator()"

    async def authenticate(self, head: RequestHead, body: Body) -> tuple[RequestHead, Body]:
        for name in self._headers:
            for value in head.get_all(name):
                token = presented_token(value)
                if token is not None and hmac.compare_digest(token.encode(), self._token):
                    kept = tuple((k, v) for k, v in head.headers if k not in self._headers)
                    return RequestHead(head.method, head.target, kept), body
        raise Unauthenticated(
            "request does not carry this debug session's token", field="authorization"
        )
