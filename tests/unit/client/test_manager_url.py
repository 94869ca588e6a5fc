"""The manager's URL: tokens never go to a remote manager over plain http by accident."""

from __future__ import annotations

import pytest

from alien.client.config import INSECURE_HTTP_ENV, check_manager_url
from alien.errors import ValidationError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.2:8080/",
        "http://[::1]:8080",
        "http://localhost:8080",
        "https://manager.vendor.example",
        "https://10.0.0.5:8443",
    ],
)
def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    assert check_manager_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://manager.vendor.example", "http://10.0.0.5:8080", "http://localhost.evil.io"]
)
def test_plain_http_to_a_remote_manager_is_refused_unless_allowed(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INSECURE_HTTP_ENV, raising=False)
    with pytest.raises(ValidationError, match="refusing plain http") as refused:
        check_manager_url(url)
    assert refused.value.field == "manager"
    monkeypatch.setenv(INSECURE_HTTP_ENV, "1")
    assert check_manager_url(url) == url
