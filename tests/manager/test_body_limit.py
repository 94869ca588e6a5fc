"""Every body the manager reads whole is bounded before it reads it: a caller with no token,
or a deployment's agent, cannot make it hold hundreds of megabytes. Upload routes stream and
keep their own limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psutil

from alien.manager.body_limit import MAX_BODY
from support.manager import ManagerProcess

MiB = 1024 * 1024


def _stream(total: int) -> Iterator[bytes]:
    chunk = b"[" + b"0," * (MiB // 2 - 1) + b"0]"  # a valid-looking JSON start, repeated
    sent = 0
    while sent < total:
        yield chunk
        sent += len(chunk)


def test_an_oversize_body_is_refused_without_being_held(shared_manager: ManagerProcess) -> None:
    manager = psutil.Process(shared_manager._proc.pid)  # type: ignore[union-attr]
    before = manager.memory_info().rss
    url = shared_manager.url
    for path, headers in (
        ("/v1/onboard", {}),  # no token at all
        ("/v1/commands", {"Authorization": "Bearer ax_key_abcdefgh_secret"}),  # the fast path
        ("/v1/releases", {"Authorization": f"Bearer {shared_manager.admin_key}"}),
    ):
        streamed = httpx.post(
            url + path,
            content=_stream(300 * MiB),
            headers={**headers, "content-type": "application/json"},
            timeout=60,
        )
        assert streamed.status_code == 413, streamed.text
        error = streamed.json()["error"]
        assert (error["code"], error["field"]) == ("PAYLOAD_TOO_LARGE", "body")
    declared = httpx.post(url + "/v1/onboard", content=b"x" * (MAX_BODY + 1), timeout=60)
    assert declared.status_code == 413
    assert manager.memory_info().rss - before < 64 * MiB
    small = httpx.post(url + "/v1/onboard", json={"token": "nope"}, timeout=10)
    assert small.status_code in (401, 422)  # an ordinary body is read as before
