"""User input in a call's path: one id is one segment, so it can never reach another route.

The manager decodes ``%2F`` before routing and httpx resolves dot segments, so an empty id, ``.``,
``..`` or a ``/`` must be refused locally, in one line, before any request is made.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from alien.cli.keys import revoke_call
from alien.client import approvals, calls
from alien.client.call import Call, decode_nothing, deployment_ref, path_segment
from alien.commands import CommandsClient
from alien.debug import session_calls
from alien.errors import ValidationError


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("dep_0123abc", "dep_0123abc"),
        ("web", "web"),
        ("acme/web", "acme/web"),
        ("a b/c?d", "a%20b/c%3Fd"),
    ],
)
def test_valid_deployment_refs_keep_their_one_slash(ref: str, path: str) -> None:
    assert deployment_ref(ref) == path
    assert calls.get_deployment(ref).path == f"/v1/deployments/{path}"


def test_an_empty_deployment_ref_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        calls.delete_deployment("")
    assert err.value.message == "deployment must not be empty"
    assert err.value.field == "deployment"


@pytest.mark.parametrize(
    "ref", ["../groups/acme", "..", ".", "acme/..", "./web", "a/b/c", "/web", "acme/", "a//b"]
)
def test_dot_empty_and_extra_segments_in_a_deployment_ref_are_refused(ref: str) -> None:
    with pytest.raises(ValidationError, match="is not a deployment id, name or group/name") as err:
        calls.wait_deployment(ref, timeout=1)
    assert err.value.field == "deployment"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "release must not be empty"),
        (".", "release '.' is not a valid id"),
        ("..", "release '..' is not a valid id"),
        ("a/b", "release 'a/b' must not contain '/'"),
    ],
)
def test_path_segment_refuses_what_would_leave_its_segment(value: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        path_segment(value, "release")
    assert err.value.message == message and err.value.field == "release"


def test_path_segment_quotes_everything_else() -> None:
    assert path_segment("rel_1 ?#%", "release") == "rel_1%20%3F%23%25"
    assert path_segment("sha256:ab", "digest", safe=":") == "sha256:ab"
    with pytest.raises(ValueError):
        path_segment("x", "id", safe="/")


def _by_hand(key_id: str) -> Call[None]:
    """A path built the way a caller that quotes its own id builds it."""
    return Call("DELETE", f"/v1/api-keys/{quote(key_id, safe='')}", decode_nothing)


@pytest.mark.parametrize(
    ("key_id", "text"),
    [
        ("", "the id after /v1/api-keys/ must not be empty"),
        ("a/b", "'a/b' is not a valid id after /v1/api-keys/"),
        ("..", "'..' is not a valid id after /v1/api-keys/"),
        (".", "'.' is not a valid id after /v1/api-keys/"),
    ],
)
def test_a_call_refuses_a_path_an_id_broke(key_id: str, text: str) -> None:
    """The net under callers that quote an id themselves: a bad id never becomes a request."""
    with pytest.raises(ValidationError) as err:
        _by_hand(key_id)
    assert err.value.message.startswith(text)
    assert "\n" not in err.value.message


def _commands_get(bad: str) -> object:
    """The commands client builds its requests itself (not through ``Call``)."""
    with CommandsClient(manager="http://127.0.0.1:9", token="ax_unused") as client:
        return client.get(bad)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (revoke_call, "key"),
        (calls.get_release, "release"),
        (calls.create_group_token, "group"),
        (calls.stat_blob, "digest"),
        (session_calls.get_session, "session"),
        (session_calls.waiting_for, "subject"),
        (approvals.deny, "subject"),
        (_commands_get, "command"),
    ],
)
@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_no_call_taking_an_id_builds_a_path_from_a_bad_one(
    make: Callable[[str], object], field: str, bad: str
) -> None:
    """Refused before any request (the commands client's manager is a closed port), naming
    the id's field rather than a path."""
    with pytest.raises(ValidationError) as err:
        make(bad)
    assert err.value.field == field


def test_ordinary_paths_and_queries_pass() -> None:
    assert _by_hand("key_1").path == "/v1/api-keys/key_1"
    assert Call("POST", "/v1/agent/commands/lease?wait=0&x=a/../b", decode_nothing).path
    assert Call("GET", "/v1/releases/rel%20x/package", decode_nothing).path
