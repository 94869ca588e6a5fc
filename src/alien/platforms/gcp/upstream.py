"""The agent's Google API upstream: a call named as ``https://<api>.googleapis.com/…`` goes to
that API's endpoint with the agent's own access token, if the customer allows the API.

The CLI sends each call of the debugged ``gcloud`` in absolute form to a Google API host (see
:mod:`alien.debug.gcp_endpoint`); here the customer's configuration decides where it goes: the
public endpoint, or the one configured for the API (a private endpoint, an emulator). Whatever
``Authorization`` arrives is replaced by the agent's token (the CLI removed the session's already),
and a call carrying a credential of the caller's elsewhere (:mod:`.caller_credentials`: a query
parameter, ``X-Goog-Api-Key``) is refused; so is an API not on the allowlist, and a call minting
a credential or a standing way in that would outlive the session (:mod:`.credential_operations`,
which also refuses a batch part carrying a credential), before any connection is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from alien.errors import Forbidden, ValidationError
from alien.platforms.bearer_tokens import TokenSource, caller_credential_refused, rebased
from alien.platforms.gcp.caller_credentials import in_headers, in_query
from alien.platforms.gcp.credential_operations import api_at, screen_credential_operations
from alien.protocol.debug_offer import google_api_of
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse
from alien.tunnel.forward import ForwardingUpstream, destination, endpoint_base

_SENT_CREDENTIAL_HEADERS = frozenset({"x-goog-api-key"})
"""The credential headers a call still carries when judged (``Authorization`` is replaced,
``Proxy-Authorization`` dropped as hop-by-hop)."""


def _caller_credentials(head: RequestHead) -> list[str]:
    """Where ``head`` carries a credential of its own besides ``Authorization``."""
    names = (name for name, _ in head.headers)
    return in_query(head.target) + in_headers(names, _SENT_CREDENTIAL_HEADERS)


def _reached(api: str, base: str) -> frozenset[str]:
    """The APIs a call to ``api`` sent to ``base`` reaches: ``api``, and the one served at
    ``base`` when the customer points ``api`` at another Google API's host."""
    served = api_at(httpx.URL(base))
    return frozenset({api} if served is None else {api, served})


def google_api(target: str) -> str | None:
    """The API an absolute-form request target calls (``pubsub``), or ``None``."""
    found = destination(target)
    return None if found is None else google_api_of(*found)


class GoogleApiUpstream:
    def __init__(
        self,
        apis: Iterable[str],
        tokens: TokenSource,
        *,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        """``apis``: the allowed ones; ``endpoints``: where some of them are served instead of
        ``https://<api>.googleapis.com``."""
        overrides = dict(endpoints or {})
        self._bases = {
            api: endpoint_base(overrides.get(api, f"https://{api}.googleapis.com"), f"gcp.{api}")
            for api in apis
        }
        self._reaches = {api: _reached(api, base) for api, base in self._bases.items()}
        allow = {httpx.URL(base).netloc.decode() for base in self._bases.values()}
        self._forward = ForwardingUpstream(allow, resolve=None)  # the customer's endpoints
        self._tokens = tokens

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        api = google_api(head.target)
        if api is None:
            raise ValidationError("not a Google API call", field="target")
        base = self._bases.get(api)
        if base is None:
            raise Forbidden(
                f"the {api} API is not on this deployment's debug allowlist (set by the customer "
                "in the agent's debug.json)",
                field="api",
                code="API_NOT_ALLOWED",
            )
        if found := _caller_credentials(head):
            raise caller_credential_refused(found)
        body = await screen_credential_operations(self._reaches[api], head, body)
        return await self._forward.send(await rebased(head, base, self._tokens), body)

    async def aclose(self) -> None:
        await self._forward.aclose()
        await self._tokens.aclose()
