"""The agent's Google API upstream refuses before connecting; the happy path (the agent's token
sent to the configured endpoint) is end to end in tests/debug_pull/test_pull_gcloud.py."""

from __future__ import annotations

import pytest

from alien.errors import AlienError, Forbidden, ValidationError
from alien.platforms.bearer_tokens import NoToken
from alien.platforms.gcp.upstream import GoogleApiUpstream, google_api
from alien.protocol.http_exchange import RequestHead, iterate_once
from alien.tunnel.forward import endpoint_base


async def _send(
    upstream: GoogleApiUpstream, target: str, headers: list[tuple[str, str]] | None = None
) -> None:
    await upstream.send(RequestHead.create("GET", target, headers or []), iterate_once(b""))


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


TOPICS = "https://pubsub.googleapis.com/v1/projects/p/topics"


@pytest.mark.parametrize(
    ("query", "header", "refused"),
    [
        ("?access_token=ya29.engineer", None, True),
        ("?oauth_token=ya29.engineer", None, True),
        ("?key=AIza-engineer", None, True),
        ("?alt=json&%24key=AIza-engineer", None, True),
        ("?pageSize=1;access%5Ftoken=ya29.engineer", None, True),
        ("", ("X-Goog-Api-Key", "AIza-engineer"), True),
        ("", ("x_goog_api_key", "AIza-engineer"), True),  # as CGI-style servers read it
        ("?pageToken=key&keys=1", None, False),
        ("", ("X-Goog-User-Project", "p"), False),
    ],
)
async def test_a_credential_of_the_callers_is_refused_before_connecting(
    query: str, header: tuple[str, str] | None, refused: bool
) -> None:
    """The agent's token is the only credential a call carries: an OAuth token or an API key
    the caller put in the query or in ``X-Goog-Api-Key`` (Google's system parameters, read by
    every API) would have the call made as the engineer's own identity from inside the
    customer's network — the only one with ``credentials: none``."""
    upstream = GoogleApiUpstream(["pubsub"], NoToken(), endpoints={"pubsub": "http://127.0.0.1:9"})
    try:
        with pytest.raises(AlienError) as failed:
            await _send(upstream, TOPICS + query, [header] if header else None)
    finally:
        await upstream.aclose()
    expected = "CALLER_CREDENTIAL_REFUSED" if refused else "UPSTREAM_UNREACHABLE"
    assert failed.value.code == expected
    assert not refused or failed.value.status == 403


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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/projects/p/topics/t:setIamPolicy"),
        ("POST", "/v1/projects/p/serviceAccounts/a@p.iam.gserviceaccount.com/keys"),
        ("POST", "/v1/token"),
    ],
)
async def test_a_call_minting_a_credential_is_refused_before_connecting(
    method: str, path: str
) -> None:
    """Whatever API it is sent to: an IAM policy, a key, a token would outlive the session
    (:mod:`alien.platforms.gcp.credential_operations` says what)."""
    upstream = GoogleApiUpstream(["pubsub"], NoToken(), endpoints={"pubsub": "http://127.0.0.1:9"})
    head = RequestHead.create(method, f"https://pubsub.googleapis.com{path}", [])
    try:
        with pytest.raises(Forbidden) as refused:
            await upstream.send(head, iterate_once(b"{}"))
    finally:
        await upstream.aclose()
    assert (refused.value.status, refused.value.code) == (403, "CREDENTIAL_MINTING_REFUSED")


async def test_an_api_pointed_at_another_apis_host_is_judged_as_that_api() -> None:
    """The request really goes to the endpoint's API: ``logging`` served by the IAM credentials
    host is refused like IAM credentials, before any connection."""
    endpoints = {"logging": "https://iamcredentials.googleapis.com"}
    upstream = GoogleApiUpstream(["logging"], NoToken(), endpoints=endpoints)
    try:
        with pytest.raises(Forbidden) as refused:
            await _send(upstream, "https://logging.googleapis.com/v1/projects/-/x")
    finally:
        await upstream.aclose()
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
