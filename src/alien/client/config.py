"""Where the manager is and which token to present: flags first, then ``ALIEN_*`` variables.

``--manager URL`` / ``ALIEN_MANAGER_URL`` (default ``http://127.0.0.1:8080``, what ``alien serve``
listens on by default; the server's root or the path prefix it is served under, never with the
routes' own ``/v1``) and ``--token`` / ``ALIEN_TOKEN`` (or ``ALIEN_API_KEY``). The token is kept
out of ``repr`` so a config object can be logged or shown in a traceback without leaking it.

Every request carries a bearer token (an admin key, a deployment's token, a debug session's), so a
manager that is not on this machine must be reached over https: plain http is refused unless the
host is a loopback one, or ``ALIEN_ALLOW_INSECURE_HTTP=1`` says the network is trusted.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from alien import __version__
from alien.errors import ValidationError

USER_AGENT = f"alien-client/{__version__}"

DEFAULT_MANAGER_URL = "http://127.0.0.1:8080"
MANAGER_ENV = "ALIEN_MANAGER_URL"
TOKEN_ENVS = ("ALIEN_TOKEN", "ALIEN_API_KEY")
INSECURE_HTTP_ENV = "ALIEN_ALLOW_INSECURE_HTTP"


def check_manager_url(value: str, *, field: str = "manager") -> str:
    """``value`` without a trailing slash if it is an absolute http(s) URL, else a clear error."""
    # The stdlib, not httpx: ``alien debug`` resolves its config before anything else and
    # must not pay for importing an HTTP client it does not use.
    try:
        url = urlsplit(value.strip())
        port_ok = url.port != 0  # raises ValueError for a port that is no port number
    except (ValueError, AttributeError):
        raise ValidationError(f"{value!r} is not a URL", field=field) from None
    if url.scheme not in {"http", "https"} or not url.hostname or not port_ok:
        raise ValidationError(
            f"{value!r} is not an http(s) URL of the manager (like http://127.0.0.1:8080)",
            field=field,
        )
    if url.query or url.fragment:
        raise ValidationError("the manager URL takes no query or fragment", field=field)
    # A manager behind a path prefix (``https://host/alien``) is supported: every route is
    # joined under it. ``/v1`` at the end is the routes' own prefix, pasted from the docs, and
    # would double it (``/v1/v1/...``: "no such route").
    prefix = url.path.rstrip("/")
    if prefix == "/v1" or prefix.endswith("/v1"):
        root = url._replace(path=prefix.removesuffix("/v1")).geturl()
        raise ValidationError(
            "the manager URL is the server's root, like http://127.0.0.1:8080: "
            f"drop /v1 (use {root})",
            field=field,
        )
    insecure_allowed = os.environ.get(INSECURE_HTTP_ENV) == "1"
    if url.scheme == "http" and not _loopback(url.hostname) and not insecure_allowed:
        raise ValidationError(
            f"refusing plain http to {url.hostname}: tokens would cross the network in clear "
            f"text; use https (or set {INSECURE_HTTP_ENV}=1 on a network you trust)",
            field=field,
        )
    return url.geturl().rstrip("/")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


def check_token(token: str) -> None:
    """Refuse a token that could not go into a header as it is, without ever showing it.

    Every alien token is visible ASCII. A stray newline or carriage return (a token pasted from
    a file written on Windows, ``$(cat …)`` of a file with CRLF) made the HTTP library refuse
    the header with the whole ``Bearer …`` value in its message, which was printed as "cannot
    reach the manager": the secret in a terminal or a CI log, and the wrong reason."""
    if not all("!" <= char <= "~" for char in token):
        raise ValidationError(
            "the token holds a space, a line break or another character no token has (copied "
            "with a trailing newline or carriage return?): set it again without",
            field="token",
        )


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token)

    @classmethod
    def resolve(
        cls,
        manager: str | None = None,
        token: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> ClientConfig:
        """Explicit values win; otherwise the environment; otherwise the defaults."""
        env = os.environ if env is None else env
        url = manager or env.get(MANAGER_ENV) or DEFAULT_MANAGER_URL
        secret = token or next((env[name] for name in TOKEN_ENVS if env.get(name)), None)
        return cls(base_url=check_manager_url(url), token=secret, timeout=timeout)

    def require_token(self) -> str:
        if not self.token:
            raise ValidationError(
                "no token: pass --token or set ALIEN_TOKEN (or ALIEN_API_KEY)", field="token"
            )
        return self.token


def headers(config: ClientConfig, token: str | None = None) -> dict[str, str]:
    """What every request to the manager carries: who is asking, and with which token."""
    secret = token if token is not None else config.token
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if secret:
        out["Authorization"] = f"Bearer {secret}"
    return out
