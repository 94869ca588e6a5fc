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


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080"),
        ("https://host.example/alien/v1", "https://host.example/alien"),
    ],
)
def test_the_routes_own_v1_is_refused_with_the_root_to_use(url: str, root: str) -> None:
    """Every route already starts with /v1: pasting it doubles it and nothing is found."""
    with pytest.raises(ValidationError) as refused:
        check_manager_url(url)
    assert refused.value.message == (
        f"the manager URL is the server's root, like http://127.0.0.1:8080: drop /v1 (use {root})"
    )
    assert refused.value.field == "manager"


@pytest.mark.parametrize(
    "url", ["https://host.example/alien", "https://host.example/alien/", "https://host.example/v10"]
)
def test_a_path_prefix_the_manager_is_served_under_is_kept(url: str) -> None:
    assert check_manager_url(url) == url.rstrip("/")
