"""Reading a deployment by reference never tells a caller about deployments outside its scope.

A deployment token sees its own deployment and nothing else; a key scoped to groups sees the
deployments of its groups. Any other reference (another customer's deployment by id or
``group/name``, a bare name other groups share) answers exactly what a reference to nothing
answers: 404, same code, field and message but for the reference — never 403 ("it exists,
but not for you") nor 409 ``AMBIGUOUS_NAME`` ("several exist").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from support.api import ApiClient
from support.names import unique

READS: dict[str, Callable[[str], str]] = {
    "get": lambda ref: f"/v1/deployments/{ref}",
    "wait": lambda ref: f"/v1/deployments/{ref}/wait?state=pending&timeout=0",
    "aws": lambda ref: f"/v1/aws-deployments/{ref}",
}


@dataclass(frozen=True)
class Scene:
    own: dict[str, Any]  # deployment "x" of group A
    own_token: str
    group: str  # A
    own_refs: list[str]  # the ways to address it: id, A/x, x
    foreign_refs: list[str]  # B's "x" by id and B/x; "y" (in B and C) bare and as B/y


@pytest.fixture
def scene(admin: ApiClient) -> Scene:
    a, b, c = (admin.create_group(unique(g))["name"] for g in ("ga", "gb", "gc"))
    shared, elsewhere = unique("x"), unique("y")
    onboarded = admin.onboard(admin.create_group_token(a), shared)
    own = onboarded["deployment"]
    token_b = admin.create_group_token(b)
    twin = admin.onboard(token_b, shared)["deployment"]
    admin.onboard(token_b, elsewhere)
    admin.onboard(admin.create_group_token(c), elsewhere)
    return Scene(
        own=own,
        own_token=onboarded["token"],
        group=a,
        own_refs=[own["id"], f"{a}/{shared}", shared],
        foreign_refs=[twin["id"], f"{b}/{shared}", elsewhere, f"{b}/{elsewhere}"],
    )


def _ghosts(scene: Scene) -> list[str]:
    """References to nothing, one of each form."""
    return ["dep_" + "0" * 26, f"{scene.group}/{unique('none')}", unique("none")]


def _refusal(response: httpx.Response, ref: str) -> tuple[int, dict[str, Any]]:
    error = response.json()["error"]
    return response.status_code, {**error, "message": error["message"].replace(ref, "<ref>")}


def _assert_blind(client: ApiClient, scene: Scene, read: str) -> None:
    """Every foreign reference is answered as each reference to nothing is."""
    path = READS[read]
    nothing, *others = (_refusal(client.get(path(ref)), ref) for ref in _ghosts(scene))
    assert all(other == nothing for other in others), (nothing, others)
    assert nothing[0] == 404 and nothing[1]["code"] == "NOT_FOUND", nothing
    for ref in scene.foreign_refs:
        assert _refusal(client.get(path(ref)), ref) == nothing, (read, ref)


@pytest.mark.parametrize("read", ["get", "wait"])
def test_a_deployment_token_reads_its_own_deployment_by_any_reference(
    admin: ApiClient, scene: Scene, read: str
) -> None:
    """A bare name other groups share too still means its own deployment: the token's
    deployment is the only one it is asked among."""
    with admin.with_token(scene.own_token) as agent:
        for ref in scene.own_refs:
            response = agent.get(READS[read](ref))
            assert response.status_code == 200, (ref, response.text)
            body = response.json()
            assert (body["deployment"] if read == "wait" else body)["id"] == scene.own["id"]


@pytest.mark.parametrize("read", list(READS))
def test_a_deployment_token_finds_no_other_deployment(
    admin: ApiClient, scene: Scene, read: str
) -> None:
    with admin.with_token(scene.own_token) as agent:
        _assert_blind(agent, scene, read)


@pytest.mark.parametrize("read", list(READS))
def test_a_scoped_key_finds_no_deployment_of_another_group(
    admin: ApiClient, scene: Scene, read: str
) -> None:
    body = {"name": "v", "role": "viewer", "groups": [scene.group]}
    created = admin.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    with admin.with_token(created.json()["key"]) as scoped:
        if read != "aws":
            own = scoped.get(READS[read](scene.own_refs[2]))
            assert own.status_code == 200, own.text
        _assert_blind(scoped, scene, read)
