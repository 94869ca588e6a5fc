"""Opening a session: the deployment must exist and be reachable in push mode, and its debug
policy decides (forbidden, approval required, maximum TTL, channels). Refusals are audited."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from dbg_world import World
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from support.names import unique


def _open(world: World, key: str | None = None, **body: Any) -> Any:
    client = world.client(key or world.debugger_key)
    return client.post("/v1/debug-sessions", json={"deployment": world.ref, "reason": "x", **body})


def _set_policy(world: World, **policy: Any) -> None:
    response = world.admin.request("PUT", f"/v1/debug-policies/{world.ref}", json=policy)
    assert response.status_code == 200, response.text


def test_default_policy_is_allowed_for_an_hour_on_every_channel(world: World) -> None:
    policy = world.admin.get(f"/v1/debug-policies/{world.ref}").json()
    assert policy["default"] and policy["mode"] == "allowed"
    assert policy["max_ttl_seconds"] == 3600 and "aws" in policy["allowed_channels"]
    opened = _open(world)
    assert opened.status_code == 201 and opened.json()["ttl_seconds"] == 3600
    assert opened.json()["token"].startswith("ax_dbg_")


def test_unknown_and_unreachable_deployments(world: World) -> None:
    missing = _open(world, deployment=f"{world.ref}-nope")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "deployment"
    group = world.ref.split("/")[0]
    local = world.admin.onboard(world.admin.create_group_token(group), unique("local"))
    unreachable = _open(world, deployment=local["deployment"]["id"])
    assert unreachable.status_code == 409
    assert unreachable.json()["error"]["code"] == "DEBUG_UNAVAILABLE"


@pytest.mark.parametrize(
    ("policy", "body", "code", "field"),
    [
        ({"mode": "forbidden"}, {}, "DEBUG_FORBIDDEN", "deployment"),
        (
            {"mode": "allowed", "max_ttl_seconds": 60},
            {"ttl_seconds": 61},
            "DEBUG_TTL_TOO_LONG",
            "ttl_seconds",
        ),
        (
            {"mode": "allowed", "allowed_channels": ["gcp"]},
            {},
            "DEBUG_CHANNEL_NOT_ALLOWED",
            "deployment",
        ),
    ],
)
def test_policy_refusals_are_403_and_audited(
    world: World, policy: dict[str, Any], body: dict[str, Any], code: str, field: str
) -> None:
    _set_policy(world, **policy)
    refused = _open(world, **body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == code
    assert refused.json()["error"]["field"] == field
    records = world.admin.get(
        "/v1/audit", params={"deployment": world.ref, "action": "debug.session.open"}
    ).json()["items"]
    assert records[-1]["outcome"] == "denied" and records[-1]["details"]["code"] == code
    assert world.sessions() == []


def test_forbidden_deployment_refuses_alien_debug_with_one_line(world: World) -> None:
    _set_policy(world, mode="forbidden")
    result = world.debug("true")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: the debug policy of '{world.ref}' forbids debugging it (deployment)"
    )
    assert world.session_dirs() == []


def test_approval_required_leaves_the_session_pending(world: World) -> None:
    _set_policy(world, mode="approval_required")
    opened = _open(world)
    assert opened.status_code == 201 and opened.json()["state"] == "pending_approval"
    assert opened.json()["expires_at"] is None
    session_id, token = opened.json()["id"], opened.json()["token"]
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"{world.manager.ws_url}/v1/debug-sessions/{session_id}/tunnel",
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=10,
        )
    assert refused.value.response.status_code == 409
    assert json.loads(refused.value.response.body)["error"]["code"] == "SESSION_NOT_ACTIVE"

    result = world.debug("true", options=("--approval-timeout", "0.5"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "is waiting for approval" in lines[0]
    assert "was not approved within 0.5 s" in lines[-1]
    cancelled = world.sessions()[0]
    assert cancelled["state"] == "closed" and cancelled["started_at"] is None
    events = world.admin.get("/v1/audit", params={"session": cancelled["id"]}).json()["items"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("debug.session.open", "succeeded"),
        ("approval.request", "succeeded"),
        ("debug.session.cancel", "succeeded"),
    ]
    assert events[0]["details"]["state"] == "pending_approval"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_cli_stopped_while_waiting_withdraws_its_request(world: World, signum: int) -> None:
    """As Ctrl-C does: killed on the spot, it left the request in the customer's queue."""
    _set_policy(world, mode="approval_required")
    waiting = world.start_debug("true")
    deadline = time.monotonic() + 30
    while not (sessions := world.sessions()) or sessions[0]["state"] != "pending_approval":
        assert time.monotonic() < deadline and waiting.poll() is None
        time.sleep(0.1)
    waiting.send_signal(signum)
    assert waiting.wait(timeout=30) == 128 + signum
    assert world.sessions()[0]["state"] == "closed"
    assert world.session_dirs() == []


def test_only_the_opener_or_an_admin_closes_a_session(world: World) -> None:
    opened = _open(world, key=world.manager.admin_key)
    session_id = opened.json()["id"]
    by_debugger = world.client(world.debugger_key).post(
        f"/v1/debug-sessions/{session_id}/close", json={}
    )
    assert by_debugger.status_code == 403
    by_admin = world.admin.post(f"/v1/debug-sessions/{session_id}/close", json={"exit_code": 2})
    assert by_admin.status_code == 200 and by_admin.json()["exit_code"] == 2
    again = world.admin.post(f"/v1/debug-sessions/{session_id}/close", json={"exit_code": 5})
    assert again.json()["state"] == "closed" and again.json()["exit_code"] == 2


def test_registration_is_validated(world: World) -> None:
    group, name = world.ref.split("/")
    base = {"group": group, "region": "eu-west-1", "allowed_services": ["s3"]}
    bad_arn = world.admin.post(
        "/v1/aws-deployments", json={**base, "name": unique("x"), "role_arn": "arn:aws:iam::1:x"}
    )
    assert bad_arn.status_code == 422 and bad_arn.json()["error"]["field"] == "role_arn"
    role = "arn:aws:iam::123456789012:role/r"
    taken = world.admin.post("/v1/aws-deployments", json={**base, "name": name, "role_arn": role})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "NAME_TAKEN"
    no_services = world.admin.post(
        "/v1/aws-deployments",
        json={**base, "name": unique("x"), "role_arn": role, "allowed_services": []},
    )
    assert no_services.status_code == 422
    assert no_services.json()["error"]["field"] == "allowed_services"


def _alien(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = world.cli_env(ALIEN_TOKEN=world.manager.admin_key)
    return subprocess.run(
        [sys.executable, "-m", "alien.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_commands(world: World) -> None:
    group = world.ref.split("/")[0]
    name = unique("cli")
    registered = _alien(
        world,
        "deployments",
        "register-aws",
        f"{group}/{name}",
        "--region",
        "eu-west-1",
        "--role-arn",
        "arn:aws:iam::123456789012:role/r",
        "--service",
        "s3",
        "--service",
        "sts",
    )
    assert registered.returncode == 0, registered.stderr
    assert f"registered {group}/{name}" in registered.stdout
    policy = _alien(
        world,
        "debug",
        "policy",
        "set",
        f"{group}/{name}",
        "--mode",
        "approval_required",
        "--max-ttl",
        "600",
        "--json",
    )
    assert policy.returncode == 0, policy.stderr
    assert json.loads(policy.stdout)["mode"] == "approval_required"
    shown = _alien(world, "debug", "policy", "show", f"{group}/{name}")
    assert shown.stdout.startswith("approval_required, max TTL 600s")

    opened = _open(world)
    session_id = opened.json()["id"]
    revoked = _alien(world, "debug", "revoke", session_id, "--reason", "done", "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["state"] == "revoked"
    sessions = _alien(world, "debug", "sessions", "--deployment", world.ref, "--json")
    assert [s["id"] for s in json.loads(sessions.stdout)] == [session_id]
    listed = _alien(world, "debug", "sessions", "--deployment", world.ref)  # piped: ids whole
    assert any(line.startswith(f"{session_id} ") for line in listed.stdout.splitlines()), listed
    shown = _alien(world, "debug", "show", session_id)
    assert f"         id: {session_id}\n" in shown.stdout and "  exit_code: -\n" in shown.stdout
    audit = _alien(world, "audit", "--session", session_id, "--json")
    assert [r["action"] for r in json.loads(audit.stdout)] == [
        "debug.session.open",
        "debug.session.revoke",
    ]
    table = _alien(world, "audit", "--action", "debug.", "--deployment", world.ref)
    assert table.returncode == 0 and "debug.session.revoke" in table.stdout
    first = _alien(world, "audit", "--action", "debug.", "--deployment", world.ref, "--limit", "1")
    seq = first.stdout.splitlines()[1].split()[0]  # a full page says where the next one starts
    assert first.stderr.strip() == f"(the first 1 records from there; the next ones: --after {seq})"
