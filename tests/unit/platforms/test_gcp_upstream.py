"""The agent's Google API upstream refuses before connecting; the happy path (the agent's token
sent to the configured endpoint) is end to end in tests/debug_pull/test_pull_gcloud.py."""

from __future__ import annotations

import pytest

from alien.errors import AlienError, Forbidden, ValidationError
from alien.platforms.bearer_tokens import NoToken
from alien.platforms.gcp.upstream import GoogleApiUpstream, google_api
from alien.protocol.http_exchange import RequestHead, iterate_once
from alien.tunnel.forward import endpoint_base


async def _send(upstream: GoogleApiUpstream, target: str) -> None:
    await upstream.send(RequestHead.create("GET", target, []), iterate_once(b""))


async def test_only_allowed_google_apis_are_called() -> None:
    upstream = GoogleApiUpstream(["pubsub"], NoToken(), endpoints={"pubsub": "http://127.0.0.1:9"})
    try:
        with pytest.raises(Forbidden) as refused:
            await _send(upstream, "https://secretmanager.googleapis.com/v1/projects/p/secrets")
        assert refused.value.code == "API_NOT_ALLOWED"
        with pytest.raises(ValidationError):
            await _send(upstream, "https://example.com/v1")
        with pytest.raises(AlienError) as unreachable:  # allowed: it tries the endpoint
            await _send(upstream, "https://pubsub.googleapis.com/v1/projects/p/topics")
        assert unreachable.value.code == "UPSTREAM_UNREACHABLE"
    finally:
        await upstream.aclose()


@pytest.mark.parametrize(
    ("target", "api"),
    [
        ("https://pubsub.googleapis.com/v1", "pubsub"),
        ("https://xn--api-.googleapis.com/v1", None),  # malformed IDNA: not a Google API
        ("https://pubsub.googleapis.com:8443/v1", None),
        ("http://[::1/", None),
    ],
)
def test_which_google_api_a_target_calls(target: str, api: str | None) -> None:
    assert google_api(target) == api


@pytest.mark.parametrize(
    "url",
    ["ftp://host", "http://", "http://h:1/path", "http://u:p@h", "http://h?x=1", "not a url"],
)
def test_an_endpoint_is_scheme_host_and_port_only(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        endpoint_base(url, "gcp.endpoints.pubsub")
    assert refused.value.field == "gcp.endpoints.pubsub"


def test_an_endpoint_keeps_its_port() -> None:
    assert endpoint_base("http://127.0.0.1:8085/", "f") == "http://127.0.0.1:8085"
    assert endpoint_base("https://pubsub.googleapis.com", "f") == "https://pubsub.googleapis.com"
