"""Approvals: debug sessions (and commands, when the customer's policy says so) wait until the
customer — and, when the vendor's policy asks, a vendor approver — approve; a denial ends them;
nobody approves their own request; every decision is audited.

Real processes: a signature-checking moto server, a manager whose own AWS identity assumes the
deployment's role there, ``alien debug`` as a subprocess with the real aws CLI; the customer's
``alien-deploy`` runs in-process with the deployment's own token."""

from __future__ import annotations

import json
import re
from typing import Any

from agent_double import KNOWN_COMMANDS, CommandAgent, create_command, running_deployment
from dbg_world import AWS, World
from typer.testing import CliRunner, Result

from alien.cli.deploy import app as deploy_app
from alien.cli.main import app as alien_app
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

runner = CliRunner()


def customer_token(world: World) -> str:
    """The push-model deployment's own credentials, handed to its customer once."""
    issued = world.admin.post("/v1/customer-credentials", json={"deployment": world.ref})
    assert issued.status_code == 201, issued.text
    again = world.admin.post("/v1/customer-credentials", json={"deployment": world.ref})
    assert again.status_code == 409 and again.json()["error"]["code"] == "HAS_CREDENTIALS"
    return str(issued.json()["token"])


def deploy(world: World, token: str, *args: str) -> Result:
    """``alien-deploy <args>`` as the customer (ALIEN_DEPLOYMENT_TOKEN + --manager)."""
    env = {"ALIEN_DEPLOYMENT_TOKEN": token}
    return runner.invoke(deploy_app, [*args, "--manager", world.manager.url], env=env)


def vendor(world: World, key: str, *args: str) -> Result:
    """``alien <args>`` as a vendor engineer holding ``key``."""
    return runner.invoke(alien_app, [*args, "--manager", world.manager.url, "--token", key])


def deploy_json(world: World, token: str, *args: str) -> Any:
    result = deploy(world, token, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def open_session(client: ApiClient, world: World) -> dict[str, Any]:
    opened = client.post("/v1/debug-sessions", json={"deployment": world.ref, "reason": "test"})
    assert opened.status_code == 201, opened.text
    return dict(opened.json())


def actions(world: World, subject: str) -> list[tuple[str, str, str]]:
    records = world.admin.get("/v1/audit", params={"target": subject}).json()["items"]
    return [(r["action"], r["actor"]["kind"], r["outcome"]) for r in records]


def test_the_cli_waits_for_the_customer_who_approves_for_a_while(world: World) -> None:
    token = customer_token(world)
    deploy_json(world, token, "policy", "set", "--debug", "approval")
    process = world.start_debug(AWS, "sts", "get-caller-identity", "--output", "json")
    assert process.stderr is not None and process.stdout is not None
    waiting = process.stderr.readline()
    assert "is waiting for approval by the customer (alien-deploy approve dbg_" in waiting
    session_id = re.search(r"debug session (dbg_[0-9a-z]+) ", waiting)[1]  # type: ignore[index]
    [pending] = deploy_json(world, token, "pending")
    assert pending["subject_id"] == session_id and pending["waiting_for"] == ["customer"]

    approved = deploy(world, token, "approve", session_id, "--for", "2m")
    assert approved.exit_code == 0 and f"{session_id}: approved for 120s" in approved.stdout
    assert process.wait(timeout=60) == 0, process.stderr.read()
    assert json.loads(process.stdout.read())["Arn"].endswith(f"alien-debug-{session_id}")
    session = world.admin.get(f"/v1/debug-sessions/{session_id}").json()
    assert session["ttl_seconds"] == 120 and session["state"] == "closed"
    assert actions(world, session_id)[:4] == [
        ("debug.session.open", "api_key", "succeeded"),
        ("approval.request", "api_key", "succeeded"),
        ("approval.approve", "deployment", "allowed"),
        ("debug.session.start", "system", "allowed"),
    ]


def test_a_denied_session_ends_and_its_token_stops_working(world: World) -> None:
    token = customer_token(world)
    deploy_json(world, token, "policy", "set", "--debug", "approval")
    engineer = world.client(world.debugger_key)
    opened = open_session(engineer, world)
    assert opened["state"] == "pending_approval"
    denied = deploy(world, token, "deny", opened["id"], "--note", "not during the audit")
    assert denied.exit_code == 0 and f"{opened['id']}: denied" in denied.stdout
    session = engineer.get(f"/v1/debug-sessions/{opened['id']}").json()
    assert session["state"] == "denied"
    assert "denied by the customer" in session["end_reason"]
    assert "not during the audit" in session["end_reason"]
    with world.admin.with_token(opened["token"]) as session_token:
        assert session_token.get(f"/v1/debug-sessions/{opened['id']}").status_code == 401
    again = deploy(world, token, "approve", opened["id"])
    assert again.exit_code == 1 and "no longer waiting for approval" in again.output
    assert ("debug.session.deny", "deployment", "succeeded") in actions(world, opened["id"])


def test_both_parties_approve_and_nobody_approves_their_own_request(world: World) -> None:
    token = customer_token(world)
    deploy_json(world, token, "policy", "set", "--debug", "approval")
    vendor_policy = {"mode": "approval_required", "max_ttl_seconds": 3600}
    put = world.admin.request("PUT", f"/v1/debug-policies/{world.ref}", json=vendor_policy)
    assert put.status_code == 200
    engineer = world.client(world.debugger_key)
    opened = open_session(engineer, world)
    path = f"/v1/approvals/{opened['id']}"
    assert engineer.get(path).json()["waiting_for"] == ["customer", "vendor"]
    assert engineer.post(f"{path}/approve").status_code == 403, "a debugger is no approver"

    own = open_session(world.admin, world)
    refused = world.admin.post(f"/v1/approvals/{own['id']}/approve")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "SELF_APPROVAL"
    assert ("approval.approve", "api_key", "denied") in actions(world, own["id"])

    stranger = running_deployment(world.admin)
    with world.admin.with_token(stranger.token) as other_customer:
        assert other_customer.post(f"{path}/approve").status_code == 404
        assert other_customer.get("/v1/approvals").json()["items"] == []

    first = deploy_json(world, token, "approve", opened["id"])
    assert first["state"] == "pending" and first["waiting_for"] == ["vendor"]
    assert engineer.get(f"/v1/debug-sessions/{opened['id']}").json()["state"] == "pending_approval"

    # The vendor's side, through `alien approvals`.
    listed = vendor(
        world, world.manager.admin_key, "approvals", "ls", "--deployment", world.ref, "--json"
    )
    assert listed.exit_code == 0, listed.output
    waiting = {a["subject_id"]: a["waiting_for"] for a in json.loads(listed.stdout)}
    assert waiting[opened["id"]] == ["vendor"]
    not_approver = vendor(world, world.debugger_key, "approvals", "approve", opened["id"])
    assert not_approver.exit_code == 1 and not_approver.stderr.count("\n") == 1
    second = vendor(
        world, world.manager.admin_key, "approvals", "approve", opened["id"], "--for", "12h"
    )
    assert second.exit_code == 0, second.output
    session = engineer.get(f"/v1/debug-sessions/{opened['id']}").json()
    assert session["state"] == "active" and session["ttl_seconds"] < 12 * 3600
    # What it says is what the session got: --for only shortens, within the policy's maximum.
    assert second.stdout.strip() == f"{opened['id']}: approved for {session['ttl_seconds']}s"


def test_a_command_waits_for_the_customers_approval(
    push_manager: ManagerProcess, world: World
) -> None:
    dep = running_deployment(world.admin, commands=KNOWN_COMMANDS)
    with world.admin.with_token(dep.token) as customer:
        patch = customer.request("PATCH", "/v1/customer/policy", json={"command_approval": True})
        assert patch.status_code == 200
        with CommandAgent(push_manager.ws_url, dep.token) as agent:
            held = create_command(world.admin, dep, "echo", params={"n": 1}).json()
            denied = create_command(world.admin, dep, "echo", params={"n": 2}).json()
            assert held["state"] == denied["state"] == "pending"
            [first, second] = customer.get("/v1/approvals").json()["items"]
            assert (first["subject_id"], first["kind"]) == (held["id"], "command")
            assert second["subject_id"] == denied["id"]

            assert customer.post(f"/v1/approvals/{denied['id']}/deny").status_code == 200
            ended = world.admin.get(f"/v1/commands/{denied['id']}", params={"wait": 5}).json()
            assert ended["state"] == "cancelled"
            assert world.admin.get(f"/v1/commands/{held['id']}").json()["state"] == "pending"

            refused = customer.post(
                f"/v1/approvals/{held['id']}/approve", json={"grant_seconds": 60}
            )
            assert refused.status_code == 422, refused.text  # a command has no TTL to grant
            assert refused.json()["error"]["field"] == "grant_seconds"
            assert customer.post(f"/v1/approvals/{held['id']}/approve").status_code == 200
            offer = agent.command(command_id=held["id"])
            assert agent.respond(offer, {"n": 1})["ok"] is True
            assert not [m for m in agent.pending("command") if m["envelope"]["id"] == denied["id"]]
    done = world.admin.get(f"/v1/commands/{held['id']}", params={"wait": 5}).json()
    assert done["state"] == "succeeded" and done["result"] == {"n": 1}


def test_a_customer_lists_by_its_own_deployment_only(push_manager: ManagerProcess) -> None:
    """A deployment token's ``?deployment=`` is checked against its own deployment alone: any
    other name — one other customers share, one only another customer has — answers exactly
    what a name nobody has does (a customer learns no other customer's deployment names)."""
    with push_manager.client() as admin:

        def elsewhere(name: str) -> dict[str, Any]:
            group = admin.create_group(unique("grp"))["name"]
            return admin.onboard(admin.create_group_token(group), name)["deployment"]

        own = running_deployment(admin)
        elsewhere(own.name)
        shared = elsewhere(unique("dep"))["name"]
        elsewhere(shared)
        single = elsewhere(unique("dep"))
        with admin.with_token(own.token) as customer:
            for ref in (own.id, own.ref, own.name):  # its bare name is shared: still its own
                listed = customer.get("/v1/approvals", params={"deployment": ref})
                assert listed.status_code == 200, listed.text

            def refused(ref: str) -> dict[str, Any]:
                response = customer.get("/v1/approvals", params={"deployment": ref})
                assert response.status_code == 404, response.text
                error = response.json()["error"]
                return {**error, "message": error["message"].replace(ref, "?")}

            nowhere = refused(unique("nothing"))
            others = [shared, single["name"], single["id"]]
            assert [refused(ref) for ref in others] == [nowhere] * len(others)


def test_a_scoped_key_lists_its_groups_approvals_before_the_limit(
    push_manager: ManagerProcess,
) -> None:
    """The scope is applied in the query, before ``limit``: filtered after it, another group's
    older approval would take the page's place — and comparing limits would count them."""
    with push_manager.client() as admin:
        other, mine = running_deployment(admin), running_deployment(admin)
        pending = {}
        for dep in (other, mine):  # the other group's approval is the older one
            with admin.with_token(dep.token) as customer:
                policy = {"command_approval": True}
                assert customer.request("PATCH", "/v1/customer/policy", json=policy).is_success
            created = create_command(admin, dep).json()
            assert created["state"] == "pending", created
            pending[dep.id] = created["id"]
        issued = admin.post(
            "/v1/api-keys", json={"name": unique("key"), "role": "viewer", "groups": [mine.group]}
        )
        assert issued.status_code == 201, issued.text
        with admin.with_token(issued.json()["key"]) as scoped:
            for limit in (1, 2):
                listed = scoped.get("/v1/approvals", params={"limit": limit})
                assert listed.status_code == 200, listed.text
                items = listed.json()["items"]
                assert [i["subject_id"] for i in items] == [pending[mine.id]], limit
