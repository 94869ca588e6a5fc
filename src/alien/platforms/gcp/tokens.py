"""The agent's own Google access token from the metadata server (:class:`MetadataToken`).

Every GCE VM, GKE node (or Workload Identity pod), Cloud Run and Cloud Functions instance serves
its service account's token at ``/computeMetadata/v1/instance/service-accounts/default/token``
(``Metadata-Flavor: Google`` required); the token is reused until a minute before it expires.
``GCE_METADATA_HOST`` names another server, as google-auth honours it. The other sources (a token
file, none) are :mod:`alien.platforms.bearer_tokens`.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx

from alien.errors import PlatformError
from alien.platforms.bearer_tokens import token_unavailable

METADATA_HOST_ENV = "GCE_METADATA_HOST"
DEFAULT_METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
REFRESH_BEFORE = 60.0
"""Seconds before its expiry a metadata token is replaced."""
METADATA_TIMEOUT = 5.0


class MetadataToken:
    def __init__(self, host: str | None = None, *, client: httpx.AsyncClient | None = None) -> None:
        host = host or os.environ.get(METADATA_HOST_ENV) or DEFAULT_METADATA_HOST
        self._url = f"http://{host}{TOKEN_PATH}"
        self._client = client or httpx.AsyncClient(timeout=METADATA_TIMEOUT, trust_env=False)
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    async def token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:  # one fetch for all the calls that found it stale
            if self._token is None or time.monotonic() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                self._renew_at = time.monotonic() + max(lifetime - REFRESH_BEFORE, 0.0)
        return self._token

    async def _fetch(self) -> tuple[str, float]:
        try:
            response = await self._client.get(self._url, headers={"Metadata-Flavor": "Google"})
        except httpx.HTTPError as exc:
            raise _unavailable(
                f"the metadata server at {self._url} cannot be reached: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise _unavailable(f"the metadata server answered HTTP {response.status_code}")
        try:
            data = response.json()
            token, lifetime = data["access_token"], float(data.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise _unavailable("the metadata server's token answer is malformed") from None
        if not isinstance(token, str) or not token:
            raise _unavailable("the metadata server's token answer is malformed")
        return token, lifetime

    async def aclose(self) -> None:
        await self._client.aclose()


def _unavailable(message: str) -> PlatformError:
    return token_unavailable(f"no Google access token: {message}", "gcp")
