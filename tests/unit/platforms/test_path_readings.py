"""The readings of a path a credential screen judges: what a server, or a proxy in front of one,
may route the path as sent to."""

from __future__ import annotations

import pytest
from hypothesis import example, given

from alien.platforms.path_readings import path_readings, sent_target
from support.path_spellings import spellings

TOKEN = "/api/v1/namespaces/shop/serviceaccounts/default/token"
TOKEN_SEGMENTS = ("api", "v1", "namespaces", "shop", "serviceaccounts", "default", "token")


@pytest.mark.parametrize(
    ("path", "readings"),
    [
        ("/api/v1/pods", {("api", "v1", "pods")}),
        ("/api/v1/pods?x=/../y", {("api", "v1", "pods")}),  # the query is not the path
        ("/api/v1/pods/", {("api", "v1", "pods")}),
        ("/API/V1/Pods", {("api", "v1", "pods")}),
        ("/api/v1%2Fpods", {("api", "v1", "pods")}),  # Go decodes %2F before routing
        ("/api/v1%252Fpods", {("api", "v1", "pods")}),  # and one behind a proxy that decodes
        ("/api/v1\\pods", {("api", "v1", "pods")}),
        ("/api//v1/pods", {("api", "", "v1", "pods"), ("api", "v1", "pods")}),
        ("//api/v1", {("", "api", "v1"), ("api", "v1")}),
        ("/", {()}),
        (
            "/api/x/%2e%2e/v1",
            {("api", "x", "..", "v1"), ("api", "v1")},  # kept as a name, or resolved
        ),
        (
            "/a//%2E%2E/b",  # RFC 3986 drops the empty segment; collapsing first drops a
            {("a", "", "..", "b"), ("a", "..", "b"), ("a", "b"), ("b",)},
        ),
    ],
)
def test_a_path_is_read_every_way_a_server_may(path: str, readings: set[tuple[str, ...]]) -> None:
    assert path_readings(path) == readings


def test_the_path_judged_is_the_one_sent() -> None:
    """httpx resolves literal dot segments before sending: what the server gets is judged."""
    assert sent_target("https://kubernetes.default.svc/api/x/../v1/pods?y=1") == "/api/v1/pods?y=1"


@given(spellings(TOKEN))
@example("/api/v1/namespaces/shop/serviceaccounts/default%2Ftoken")
@example("//api/v1/namespaces/shop/serviceaccounts/x/%2e%2e/default/token/")
def test_every_spelling_of_a_path_has_its_plain_reading(spelt: str) -> None:
    sent = sent_target(f"https://kubernetes.default.svc{spelt}")
    assert TOKEN_SEGMENTS in path_readings(sent)
