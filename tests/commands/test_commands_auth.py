"""Who may do what on the commands routes, from one table — real manager.

Callers: no token, an admin key, a viewer key, a group token, the deployment token of the
deployment the command is for ("own"), another deployment's token ("other"), a garbage token and
a revoked key. Everyone not allowed is refused: 401 without a valid token, 403 with one — and
each 403 leaves an ``access.denied`` audit record naming the action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from agent_double import KNOWN_COMMANDS, Deployment, create_command, running_deployment

from support.api import ApiClient
from support.manager import ManagerProcess

CALLERS = ["none", "admin", "viewer", "group", "own", "other", "garbage", "revoked"]
UNAUTHENTICATED = {"none", "garbage", "revoked"}
GARBAGE = "ax_key_0123456789abcdef_" + "x" * 43


@dataclass
class World:
    admin: ApiClient
    tokens: dict[str, str | None]
    deployment: Deployment
    command_id: str


@dataclass(frozen=True)
class Row:
    name: str
    action: str
    allow: frozenset[str]
    ok: int
    request: Callable[[World, httpx.Client], httpx.Response]


def _new_command(world: World) -> str:
    return create_command(world.admin, world.deployment).json()["id"]  # type: ignore[no-any-return]


ROWS = [
    Row(
        "create",
        "commands:invoke",
        frozenset({"admin"}),
        201,
        lambda w, c: c.post(
            "/v1/commands", json={"deployment": w.deployment.ref, "command": "echo"}
        ),
    ),
    Row(
        "read",
        "commands:read",
        frozenset({"admin", "viewer"}),
        200,
        lambda w, c: c.get(f"/v1/commands/{w.command_id}"),
    ),
    Row(
        "wait",
        "commands:read",
        frozenset({"admin", "viewer"}),
        200,
        lambda w, c: c.get(f"/v1/commands/{w.command_id}", params={"wait": 0.01}),
    ),
    Row(
        "list",
        "commands:read",
        frozenset({"admin", "viewer"}),
        200,
        lambda w, c: c.get("/v1/commands", params={"deployment": w.deployment.ref}),
    ),
    Row(
        "cancel",
        "commands:cancel",
        frozenset({"admin"}),
        200,
        lambda w, c: c.post(f"/v1/commands/{_new_command(w)}/cancel"),
    ),
    Row(
        "upload params",
        "commands:invoke",
        frozenset({"admin"}),
        201,
        lambda w, c: c.post(
            "/v1/commands/payloads", params={"deployment": w.deployment.ref}, content=b'{"a":1}'
        ),
    ),
    Row(
        "agent lease",
        "agent",
        frozenset({"own", "other"}),  # each agent leases its OWN deployment's commands only
        200,
        lambda w, c: c.post("/v1/agent/commands/lease", params={"wait": 0}),
    ),
]


@pytest.fixture(scope="module")
def world(commands_manager: ManagerProcess) -> World:
    admin = commands_manager.client()
    deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
    other = running_deployment(admin)
    viewer = admin.post("/v1/api-keys", json={"name": "viewer", "role": "viewer"}).json()["key"]
    revoked = admin.post("/v1/api-keys", json={"name": "gone", "role": "operator"}).json()
    assert admin.delete(f"/v1/api-keys/{revoked['id']}").status_code == 200
    tokens: dict[str, str | None] = {
        "none": None,
        "admin": commands_manager.admin_key,
        "viewer": viewer,
        "group": admin.create_group_token(deployment.group),
        "own": deployment.token,
        "other": other.token,
        "garbage": GARBAGE,
        "revoked": revoked["key"],
    }
    command_id = create_command(admin, deployment).json()["id"]
    return World(admin, tokens, deployment, command_id)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_token_matrix(world: World, row: Row) -> None:
    for caller in CALLERS:
        token = world.tokens[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        seq = world.admin.get("/v1/audit/head").json()["seq"]
        with httpx.Client(base_url=world.admin.base_url, headers=headers, timeout=10) as client:
            response = row.request(world, client)
        denied = world.admin.get("/v1/audit", params={"action": "access.denied", "after": seq})
        attempted = [r["details"]["attempted"] for r in denied.json()["items"]]
        if caller in row.allow:
            assert response.status_code == row.ok, (caller, response.text)
        else:
            expected = 401 if caller in UNAUTHENTICATED else 403
            assert response.status_code == expected, (caller, response.text)
            code = "UNAUTHENTICATED" if expected == 401 else "FORBIDDEN"
            assert response.json()["error"]["code"] == code, (caller, response.text)
        recorded = [row.action] if response.status_code == 403 else []
        assert attempted == recorded, caller


def test_another_agent_never_sees_or_answers_this_deployments_commands(world: World) -> None:
    before = world.admin.get(f"/v1/commands/{world.command_id}").json()
    other = world.admin.with_token(world.tokens["other"])
    leased = other.post("/v1/agent/commands/lease", params={"wait": 0}).json()["messages"]
    assert world.command_id not in [m["envelope"]["id"] for m in leased]
    answer = {"command_id": world.command_id, "lease_id": "lse_0000000000000000000000000a"}
    message = {"v": 1, "type": "command_response", "response": {**answer, "ok": True}}
    receipt = other.post("/v1/agent/status", json=message).json()["messages"][0]
    assert receipt["ok"] is False and receipt["code"] == "COMMAND_NOT_FOUND"
    after = world.admin.get(f"/v1/commands/{world.command_id}").json()
    assert after["state"] == before["state"] and after["result"] is None
