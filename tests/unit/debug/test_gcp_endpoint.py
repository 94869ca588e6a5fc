"""How gcloud's requests to its endpoint overrides become Google API calls for the agent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.debug.gcp_endpoint import google_api_target
from alien.errors import NotFound
from alien.platforms.gcp.upstream import google_api


@pytest.mark.parametrize(
    ("target", "api", "absolute"),
    [
        (
            "/pubsub/v1/projects/p/topics/t:publish",
            "pubsub",
            "https://pubsub.googleapis.com/v1/projects/p/topics/t:publish",
        ),
        (
            "/storage/v1/b?project=p&alt=json",
            "storage",
            "https://storage.googleapis.com/v1/b?project=p&alt=json",
        ),
        ("/logging", "logging", "https://logging.googleapis.com/"),
        (
            "/upload/storage/v1/b/bk/o?uploadType=multipart",
            "storage",
            "https://storage.googleapis.com/upload/storage/v1/b/bk/o?uploadType=multipart",
        ),
        (
            "/resumable/upload/storage/v1/b/bk/o",
            "storage",
            "https://storage.googleapis.com/resumable/upload/storage/v1/b/bk/o",
        ),
    ],
)
def test_each_override_path_names_its_api(target: str, api: str, absolute: str) -> None:
    assert google_api_target(target) == (api, absolute)
    assert google_api(absolute) == api  # what the agent and the manager's audit read back


@pytest.mark.parametrize("target", ["/", "/Pub-Sub/v1", "//evil.example/x", "/a.b/v1", "x"])
def test_a_path_naming_no_api_is_not_found(target: str) -> None:
    with pytest.raises(NotFound) as refused:
        google_api_target(target)
    assert refused.value.field == "target"


@given(st.text(max_size=60))
def test_any_path_gives_a_google_api_host_or_a_clear_error(target: str) -> None:
    try:
        api, absolute = google_api_target(target)
    except NotFound:
        return
    assert google_api(absolute) == api
