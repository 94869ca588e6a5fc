"""Which requests ``alien debug`` may send again when their tunnel was lost before any answer:
safe methods without a body, and nothing else."""

from __future__ import annotations

import pytest

from alien.protocol.http_exchange import RequestHead
from alien.tunnel.http import replayable


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get"])
def test_safe_methods_without_a_body_may_be_sent_again(method: str) -> None:
    assert replayable(RequestHead.create(method, "/x", [("host", "h")]))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE"])
def test_other_methods_never_are(method: str) -> None:
    assert not replayable(RequestHead.create(method, "/x", [("host", "h")]))


@pytest.mark.parametrize(
    "header", [("content-length", "3"), ("content-length", "0"), ("transfer-encoding", "chunked")]
)
def test_a_get_that_announces_a_body_is_not_sent_again(header: tuple[str, str]) -> None:
    assert not replayable(RequestHead.create("GET", "/x", [("host", "h"), header]))
