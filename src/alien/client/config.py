"""Where the manager is and which token to present: flags first, then ``ALIEN_*`` variables.

``--manager URL`` / ``ALIEN_MANAGER_URL`` (default ``http://127.0.0.1:8080``, what ``alien serve``
listens on by default) and ``--token`` / ``ALIEN_TOKEN`` (or ``ALIEN_API_KEY``). The token is kept
out of ``repr`` so a config object can be logged or shown in a traceback without leaking it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from alien.errors import ValidationError

DEFAULT_MANAGER_URL = "http://127.0.0.1:8080"
MANAGER_ENV = "ALIEN_MANAGER_URL"
TOKEN_ENVS = ("ALIEN_TOKEN", "ALIEN_API_KEY")


def check_manager_url(value: str, *, field: str = "manager") -> str:
    """``value`` without a trailing slash if it is an absolute http(s) URL, else a clear error."""
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError):
        raise ValidationError(f"{value!r} is not a URL", field=field) from None
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValidationError(
            f"{value!r} is not an http(s) URL of the manager (like http://127.0.0.1:8080)",
            field=field,
        )
    if url.query or url.fragment:
        raise ValidationError("the manager URL takes no query or fragment", field=field)
    return str(url).rstrip("/")


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0

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
