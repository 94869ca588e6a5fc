"""``AsyncManagerClient``: the asynchronous client the agent uses.

Only what an agent needs: onboarding, the HTTP side of the agent channel (the long-poll fallback),
release look-ups and package downloads. A download streams to disk while it is hashed, and is
refused unless both its size and its sha256 match what the release announced, so a truncated or
tampered package never reaches the unpacker.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from alien.client import calls
from alien.client.calls import Call
from alien.client.config import ClientConfig
from alien.client.errors import error_from_body, unreachable
from alien.client.models import Onboarded, Release
from alien.client.transport import decode, headers, request_args, timeout_for
from alien.errors import ValidationError
from alien.protocol.agent_channel import AgentPoll

T = TypeVar("T")


class PackageMismatch(ValidationError):
    """A downloaded package is not the one the release announced (size or digest)."""

    code = "PACKAGE_MISMATCH"


class AsyncManagerClient:
    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ):
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers={**headers(config), **(extra_headers or {})},
            timeout=timeout_for(config),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncManagerClient({self.config.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncManagerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(**request_args(self.config, call))
        except httpx.HTTPError as exc:
            raise unreachable(self.config.base_url, exc) from None
        return decode(call, response)

    async def onboard(
        self, name: str, platform: str, metadata: Mapping[str, Any] | None = None
    ) -> Onboarded:
        """Exchange this client's group token for a new deployment and its token."""
        return await self.call(calls.onboard(name, platform, metadata))

    async def agent_message(self, message: Mapping[str, Any]) -> AgentPoll:
        return await self.call(calls.agent_message(message))

    async def agent_next(
        self, wait: float, known: str | None, capabilities: tuple[str, ...] = ()
    ) -> AgentPoll:
        return await self.call(calls.agent_next(wait, known, capabilities))

    async def get_release(self, release_id: str) -> Release:
        return await self.call(calls.get_release(release_id))

    async def download(self, path: str, dest: Path, *, digest: str, size: int) -> None:
        """Stream ``GET path`` into ``dest`` (created 0600); verify ``size`` and ``digest``.

        On any failure ``dest`` is removed, so a partial file is never mistaken for a package.
        """
        hasher = hashlib.sha256()
        received = 0
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                async with self._http.stream(
                    "GET", path, timeout=timeout_for(self.config, 300.0)
                ) as response:
                    if response.status_code >= 400:
                        raise error_from_body(response.status_code, await response.aread())
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > size:
                            raise PackageMismatch(
                                f"package is larger than the announced {size} bytes",
                                field="package_size",
                            )
                        hasher.update(chunk)
                        out.write(chunk)
            if received != size:
                raise PackageMismatch(
                    f"package has {received} bytes, the release announced {size}",
                    field="package_size",
                )
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise PackageMismatch(
                    f"package digest {actual} does not match the release's {digest}",
                    field="package_digest",
                )
        except httpx.HTTPError as exc:
            dest.unlink(missing_ok=True)
            raise unreachable(self.config.base_url, exc) from None
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
