"""``ManagerClient``: the synchronous client the CLIs use.

Every method is one API call described in :mod:`alien.client.calls`; failures raise the matching
``AlienError`` subclass (the manager's code, message and field) or ``ManagerUnreachable``.
Uploads stream from disk: a package is never held in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from alien.client import calls
from alien.client.calls import Call
from alien.client.config import ClientConfig
from alien.client.errors import unreachable
from alien.client.models import (
    Blob,
    Deployment,
    Group,
    GroupToken,
    Onboarded,
    Release,
    WaitResult,
)
from alien.client.transport import CHUNK_BYTES, decode, headers, request_args, timeout_for
from alien.errors import NotFound

T = TypeVar("T")

#: The longest single wait the manager grants (its ``max_wait``); longer waits are several polls.
MAX_SERVER_WAIT = 60.0


class ManagerClient:
    def __init__(self, config: ClientConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self._http = httpx.Client(
            base_url=config.base_url,
            headers=headers(config),
            timeout=timeout_for(config),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"ManagerClient({self.config.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        try:
            response = self._http.request(**request_args(self.config, call))
        except httpx.HTTPError as exc:
            raise unreachable(self.config.base_url, exc) from None
        return decode(call, response)

    # --- groups ----------------------------------------------------------------------------

    def create_group(self, name: str, description: str | None = None) -> Group:
        return self.call(calls.create_group(name, description))

    def list_groups(self) -> list[Group]:
        return self.call(calls.list_groups())

    def create_group_token(self, group: str, name: str = "default") -> GroupToken:
        return self.call(calls.create_group_token(group, name))

    # --- deployments -----------------------------------------------------------------------

    def onboard(
        self, name: str, platform: str, metadata: Mapping[str, Any] | None = None
    ) -> Onboarded:
        return self.call(calls.onboard(name, platform, metadata))

    def list_deployments(
        self, group: str | None = None, state: str | None = None
    ) -> list[Deployment]:
        return self.call(calls.list_deployments(group, state))

    def get_deployment(self, ref: str) -> Deployment:
        return self.call(calls.get_deployment(ref))

    def delete_deployment(self, ref: str) -> None:
        self.call(calls.delete_deployment(ref))

    def wait_deployment(
        self, ref: str, *, release: str | None = None, states: tuple[str, ...] = (), timeout: float
    ) -> WaitResult:
        """Block until the deployment runs ``release`` / reaches one of ``states``, the awaited
        release fails there (``outcome == "failed"``), or ``timeout`` seconds pass.

        Long waits are a series of long polls (the manager caps each), so nothing here sleeps.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            result = self.call(
                calls.wait_deployment(
                    ref, release=release, states=states, timeout=min(remaining, MAX_SERVER_WAIT)
                )
            )
            if result.outcome != "timeout" or deadline - time.monotonic() <= 0:
                return result

    # --- blobs and releases ----------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        try:
            self.call(calls.stat_blob(digest))
        except NotFound:
            return False
        return True

    def upload_blob(self, path: Path, digest: str | None = None) -> Blob:
        """Stream a file to ``POST /v1/blobs`` (the manager checks ``digest`` when given)."""
        size = path.stat().st_size
        call = Call("POST", "/v1/blobs", Blob.model_validate)
        try:
            response = self._http.post(
                "/v1/blobs",
                content=_chunks(path),
                params={"digest": digest} if digest else None,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=timeout_for(self.config, max(self.config.timeout, 300.0)),
            )
        except httpx.HTTPError as exc:
            raise unreachable(self.config.base_url, exc) from None
        return decode(call, response)

    def create_release(
        self,
        manifest: Mapping[str, Any],
        package_digest: str,
        targets: Mapping[str, Any],
        description: str | None = None,
    ) -> Release:
        return self.call(calls.create_release(manifest, package_digest, targets, description))

    def get_release(self, release_id: str) -> Release:
        return self.call(calls.get_release(release_id))


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk
