"""Where a Google API call carries a credential of the caller's own, besides the ``Authorization``
header the agent replaces with its token: refused (``CALLER_CREDENTIAL_REFUSED``) wherever Google
would read it — in the call itself (:mod:`.upstream`) and in each part of a batch
(:mod:`.credential_operations`), which Google runs with the part's own credentials when it has
some. Beside the agent's token, or alone with ``credentials: none``, one of the engineer's would
have calls made as the engineer from inside the customer's network (within its VPC Service
Controls perimeter, say).
"""

from __future__ import annotations

from collections.abc import Iterable

from alien.platforms.bearer_tokens import query_names

CALLER_CREDENTIAL_PARAMETERS = frozenset({"access_token", "oauth_token", "key"})
"""Google's system parameters that carry a credential (an OAuth token, an API key; ``$key`` is
``key``), read by every API."""

CALLER_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-goog-api-key"})
"""Headers that carry a credential in a batch part. The call itself keeps only ``X-Goog-Api-Key``
of these by the time it is judged: its ``Authorization`` is replaced, ``Proxy-Authorization`` is
hop-by-hop and dropped; a part's headers go to Google as written."""


def in_query(target: str) -> list[str]:
    """The credential parameters in ``target``'s query, however spelt (``%24key``, ``KEY``)."""
    names = {name.removeprefix("$") for name in query_names(target)}
    return sorted(names & CALLER_CREDENTIAL_PARAMETERS)


def header_name(name: str) -> str:
    """``name`` as a server may take it: lower case, ``_`` as ``-`` (as CGI-style servers and
    some proxies do), so that a header is found however the caller spelt it."""
    return name.lower().replace("_", "-")


def in_headers(names: Iterable[str], credential_headers: frozenset[str]) -> list[str]:
    """Which of ``credential_headers`` the header ``names`` include."""
    return sorted({header_name(name) for name in names} & credential_headers)
