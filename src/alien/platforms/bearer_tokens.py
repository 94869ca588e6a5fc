"""Bearer tokens the agent presents to a cloud API on a debug session's behalf, and where they
come from when no cloud SDK is involved.

* :class:`TokenFile` — a file some other process keeps fresh (a Kubernetes projected service
  account token, a sidecar, a cron job running ``gcloud auth print-access-token``): read for every
  call, so a rotation applies at once;
* :class:`NoToken` — nothing is sent (emulators, endpoints that authenticate otherwise).

Platform-specific sources (the GCE metadata server) live with their platform. :func:`rebased` is
how a request goes on with the token in place of the caller's; a credential of the caller's that
an API reads from elsewhere (a query parameter, another header) is for its platform to find, and
refuse with :func:`caller_credential_refused`. No secret is ever put in an error: errors name the
source, never the token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote_plus

from alien.errors import Forbidden, PlatformError
from alien.platforms.path_readings import sent_target
from alien.protocol.http_exchange import RequestHead

_REPLACED = frozenset({"authorization", "host"})
_QUERY_SEPARATORS = re.compile("[&;]")


class TokenSource(Protocol):
    async def token(self) -> str | None:
        """The token to send now, or ``None`` to send none."""
        ...

    async def aclose(self) -> None: ...


def token_unavailable(message: str, field: str) -> PlatformError:
    return PlatformError(
        f"this agent has no token to present: {message}", field=field, code="TOKEN_UNAVAILABLE"
    )


class NoToken:
    async def token(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


class TokenFile:
    def __init__(self, path: Path, *, field: str) -> None:
        """``field``: the configuration part it belongs to, named by its errors."""
        self._path = path
        self._field = field

    async def token(self) -> str | None:
        try:
            value = self._path.read_text().strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise token_unavailable(
                f"the token file {self._path} cannot be read: {reason}", self._field
            ) from None
        if not value:
            raise token_unavailable(f"the token file {self._path} is empty", self._field)
        return value

    async def aclose(self) -> None:
        return None


async def rebased(head: RequestHead, base: str, tokens: TokenSource) -> RequestHead:
    """``head`` (an absolute-form request) sent on to ``base`` (``scheme://host[:port]``) with the
    same path and query, its ``Authorization`` replaced by ``tokens``' (none if it has none) and
    its ``Host`` left to the client."""
    path = sent_target(head.target)
    headers = [(k, v) for k, v in head.headers if k not in _REPLACED]
    token = await tokens.token()
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    return RequestHead(head.method, base + path, tuple(headers))


def query_names(target: str) -> set[str]:
    """The names of ``target``'s query parameters as a server may read them — percent-decoded,
    ``+`` a space, lower-case, split at ``&`` or ``;`` — so that a parameter is found however
    the caller spelled it."""
    query = target.partition("#")[0].partition("?")[2]
    pairs = _QUERY_SEPARATORS.split(query)
    return {unquote_plus(pair.partition("=")[0]).lower() for pair in pairs if pair}


def caller_credential_refused(found: Iterable[str]) -> Forbidden:
    """The refusal of a request carrying a credential of its own where :func:`rebased` does not
    replace it (``found``: where). Refused, not stripped: the caller asked to act as someone,
    and must learn that it does not."""
    return Forbidden(
        f"the request carries a credential of its own ({', '.join(found)}): a debug session "
        "calls with the deployment's identity only",
        field="authorization",
        code="CALLER_CREDENTIAL_REFUSED",
    )
