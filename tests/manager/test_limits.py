"""Upload limits, on a manager started with a small ``ALIEN_MAX_PACKAGE_BYTES``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from support.manager import ManagerProcess

LIMIT = 64 * 1024


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


def test_packages_over_the_limit_are_refused(
    manager_factory: Callable[..., ManagerProcess],
) -> None:
    manager = manager_factory(extra_env={"ALIEN_MAX_PACKAGE_BYTES": str(LIMIT)})
    with manager.client() as admin:
        declared = admin.post("/v1/blobs", content=b"x" * (LIMIT + 1))
        assert declared.status_code == 413
        assert declared.json()["error"] == {
            "code": "PAYLOAD_TOO_LARGE",
            "message": f"package exceeds the limit of {LIMIT} bytes",
            "field": "body",
        }
        # streamed without a Content-Length: refused while streaming
        streamed = admin.post("/v1/blobs", content=_chunks(LIMIT * 2))
        assert streamed.status_code == 413
        fits = admin.post("/v1/blobs", content=_chunks(LIMIT))
        assert fits.status_code == 201 and fits.json()["size"] == LIMIT
    leftovers = list((manager.data_dir / "blobs" / "tmp").iterdir())
    assert leftovers == []
