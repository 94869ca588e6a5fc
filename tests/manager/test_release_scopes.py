"""A release's views name only the deployments the caller may see.

One release may go to deployments of several groups (an unscoped key names them all). A key
scoped to some of those groups, and a deployment's own token, read that release too: its
``deployments`` and a named ``targets`` list must show them their own deployments and nothing
of the other groups' (neither ids nor names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from support.api import ApiClient
from support.names import unique


@dataclass(frozen=True)
class Placed:
    id: str
    name: str
    group: str
    token: str


@dataclass(frozen=True)
class Shared:
    """A release sent to two deployments of group A and two of group B, each named differently
    (group/name, id, bare name) in its targets."""

    release: str
    a: tuple[Placed, Placed]
    b: tuple[Placed, Placed]
    targets: list[str]  # a[0] by group/name, a[1] by bare name, b[0] by id, b[1] by bare name


def _place(admin: ApiClient, group: str) -> Placed:
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    dep = onboarded["deployment"]
    return Placed(dep["id"], dep["name"], group, onboarded["token"])


def _key(admin: ApiClient, *groups: str) -> ApiClient:
    body = {"name": "v", "role": "viewer", "groups": list(groups)}
    created = admin.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    return admin.with_token(created.json()["key"])


@pytest.fixture
def shared(admin: ApiClient) -> Shared:
    group_a, group_b = (admin.create_group(unique(g))["name"] for g in ("ga", "gb"))
    a = (_place(admin, group_a), _place(admin, group_a))
    b = (_place(admin, group_b), _place(admin, group_b))
    targets = [f"{group_a}/{a[0].name}", a[1].name, b[0].id, b[1].name]
    release = admin.create_release({"type": "deployments", "deployments": targets})["id"]
    return Shared(release, a, b, targets)


def _views(client: ApiClient, release: str) -> list[tuple[dict[str, Any], str]]:
    """The release as ``GET /v1/releases/{id}`` and as its item in ``GET /v1/releases`` show it
    (each with the raw text the response carried)."""
    detail = client.get(f"/v1/releases/{release}")
    assert detail.status_code == 200, detail.text
    views = [(detail.json(), detail.text)]
    listed = client.get("/v1/releases", params={"limit": 500})
    if listed.status_code != 403:  # deployment tokens do not list releases
        assert listed.status_code == 200, listed.text
        (item,) = [r for r in listed.json()["items"] if r["id"] == release]
        views.append((item, listed.text))
    return views


def _shows(client: ApiClient, s: Shared, visible: list[Placed], targets: list[str]) -> None:
    hidden = [d for d in (*s.a, *s.b) if d not in visible]
    for view, text in _views(client, s.release):
        assert view["deployments"] == sorted(d.id for d in visible)
        assert view["targets"] == {"type": "deployments", "deployments": targets}
        for dep in hidden:
            assert dep.id not in text and dep.name not in text, dep


def test_a_scoped_key_sees_only_its_groups_deployments_of_a_release(
    admin: ApiClient, shared: Shared
) -> None:
    with _key(admin, shared.a[0].group) as scoped:
        _shows(scoped, shared, list(shared.a), shared.targets[:2])


def test_a_key_scoped_to_both_groups_and_an_unscoped_key_see_them_all(
    admin: ApiClient, shared: Shared
) -> None:
    everything = [*shared.a, *shared.b]
    with _key(admin, shared.a[0].group, shared.b[0].group) as both:
        _shows(both, shared, everything, shared.targets)
    _shows(admin, shared, everything, shared.targets)


def test_a_deployment_token_sees_only_its_own_deployment_of_a_release(
    admin: ApiClient, shared: Shared
) -> None:
    for dep, target in ((shared.a[0], shared.targets[0]), (shared.b[0], shared.targets[2])):
        with admin.with_token(dep.token) as agent:
            _shows(agent, shared, [dep], [target])


def test_a_deployment_token_finds_no_release_of_another_deployment(
    admin: ApiClient, shared: Shared
) -> None:
    """Not 403 ("it exists, but not for you"): a release only other deployments got is, to a
    deployment token, exactly a release that does not exist."""
    other = admin.create_release({"type": "deployments", "deployments": [shared.b[0].id]})["id"]
    nothing = "rel_" + "0" * 26
    with admin.with_token(shared.a[0].token) as agent:
        for suffix in ("", "/package"):
            missing = agent.get(f"/v1/releases/{nothing}{suffix}")
            assert missing.status_code == 404, missing.text
            refused = agent.get(f"/v1/releases/{other}{suffix}")
            assert refused.text.replace(other, nothing) == missing.text
            assert (refused.status_code, suffix) == (404, suffix)
