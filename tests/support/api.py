"""``ApiClient``: a small synchronous client for the manager's HTTP API, for tests.

It returns ``httpx.Response`` objects from the raw methods (so tests can assert on statuses and
error bodies) and offers helpers for the common setup steps that raise on failure.
"""

from __future__ import annotations

from typing import Any

import httpx

from support.payloads import sample_manifest, sample_package


class ApiError(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text}"
        )
        self.response = response


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ApiError(response)
    return response.json() if response.content else None


class ApiClient:
    """Bound to one base URL and (optionally) one bearer token."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def with_token(self, token: str | None) -> ApiClient:
        return ApiClient(self.base_url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # raw access
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    # setup helpers (raise ApiError on failure)
    def create_group(self, name: str) -> dict[str, Any]:
        return _ok(self.post("/v1/groups", json={"name": name}))

    def create_group_token(self, group: str) -> str:
        return _ok(self.post(f"/v1/groups/{group}/tokens", json={}))["token"]

    def onboard(self, group_token: str, name: str, platform: str = "local") -> dict[str, Any]:
        """Onboard with a group token; returns ``{"deployment": …, "token": "ax_dep_…"}``."""
        response = self.http.post(
            "/v1/onboard",
            json={"name": name, "platform": platform},
            headers={"Authorization": f"Bearer {group_token}"},
        )
        return _ok(response)

    def upload(self, data: bytes) -> dict[str, Any]:
        return _ok(
            self.post(
                "/v1/blobs", content=data, headers={"content-type": "application/octet-stream"}
            )
        )

    def create_release(
        self,
        targets: dict[str, Any],
        *,
        manifest: dict[str, Any] | None = None,
        package: bytes | None = None,
    ) -> dict[str, Any]:
        blob = self.upload(package if package is not None else sample_package())
        body = {
            "manifest": manifest if manifest is not None else sample_manifest(),
            "package_digest": blob["digest"],
            "targets": targets,
        }
        return _ok(self.post("/v1/releases", json=body))

    def deployment(self, ref: str) -> dict[str, Any]:
        return _ok(self.get(f"/v1/deployments/{ref}"))
