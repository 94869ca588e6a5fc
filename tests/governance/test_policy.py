"""The customer's policy, set from the customer's side with the deployment's own token
(``alien-deploy policy``), intersected with the vendor's, and enforced: commands outside the
allowlist are refused at create, and the access switch suspends commands and holds releases.

A real manager process (SQLite); the customer's CLI runs in-process on a real state dir; the
agent end is the commands suite's WebSocket double."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))

from agent_double import KNOWN_COMMANDS, CommandAgent, create_command, running_deployment

from alien.agent.state import AgentState, StateDir
from alien.cli.deploy import app as deploy_app
from support.api import ApiClient
from support.manager import ManagerProcess
from support.payloads import sample_package

runner = CliRunner()


@pytest.fixture(scope="module")
def gov_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    proc = ManagerProcess(tmp_path_factory.mktemp("gov")).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(tail=None), proc.log()


@pytest.fixture
def admin(gov_manager: ManagerProcess) -> Iterator[ApiClient]:
    with gov_manager.client() as client:
        yield client


def customer_state(manager: ManagerProcess, root: Path, dep: Any) -> StateDir:
    """The state dir an onboarded agent leaves: agent.json and the deployment token."""
    state_dir = StateDir(root)
    state_dir.save(
        AgentState(
            manager_url=manager.url,
            deployment_id=dep.id,
            deployment_name=dep.name,
            group=dep.group,
            area=str(root / "area"),
        )
    )
    state_dir.write_token(dep.token)
    return state_dir


def deploy_cli(state_dir: StateDir, *args: str) -> Result:
    """``alien-deploy <args> --state-dir <dir>``, in-process."""
    return runner.invoke(deploy_app, [*args, "--state-dir", str(state_dir.root)])


def deploy_json(state_dir: StateDir, *args: str) -> Any:
    result = deploy_cli(state_dir, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_customer_sets_the_policy_and_the_vendor_cannot_widen_it(
    gov_manager: ManagerProcess, admin: ApiClient, tmp_path: Path
) -> None:
    dep = running_deployment(admin, commands=KNOWN_COMMANDS)
    state = customer_state(gov_manager, tmp_path / "state", dep)
    wide = {"mode": "allowed", "max_ttl_seconds": 7200}
    assert admin.request("PUT", f"/v1/debug-policies/{dep.ref}", json=wide).status_code == 200

    shown = deploy_json(
        state,
        "policy",
        "set",
        "--debug",
        "approval",
        "--max-ttl",
        "10m",
        "--channels",
        "aws,kubectl",
        "--commands",
        "echo,noop",
    )
    assert shown["customer"]["updated_by"].startswith("dtk_")
    effective = shown["effective"]
    assert effective["debug"] == "approval_required" and effective["approvers"] == ["customer"]
    assert effective["max_ttl_seconds"] == 600
    assert effective["channels"] == ["aws", "kubernetes"]
    assert effective["commands"] == ["echo", "noop"]

    wider = {"mode": "allowed", "max_ttl_seconds": 43200}
    assert admin.request("PUT", f"/v1/debug-policies/{dep.ref}", json=wider).status_code == 200
    vendor_view = admin.get(f"/v1/policies/{dep.ref}").json()
    assert vendor_view["effective"] == effective, "the vendor's longer TTL changes nothing"
    table = deploy_cli(state, "policy", "show")
    assert table.exit_code == 0 and "approval_required" in table.stdout and "600s" in table.stdout

    refused = admin.request("PATCH", "/v1/customer/policy", json={"access": True})
    assert refused.status_code == 403, "the vendor's key may not change the customer's policy"
    records = admin.get(
        "/v1/audit", params={"deployment": dep.id, "action": "policy.customer.set"}
    ).json()["items"]
    assert [r["actor"]["kind"] for r in records] == ["deployment"]
    assert records[0]["details"]["changed"] == ["channels", "commands", "debug", "max_ttl_seconds"]


def test_bad_values_are_refused_naming_the_option(
    gov_manager: ManagerProcess, admin: ApiClient, tmp_path: Path
) -> None:
    state = customer_state(gov_manager, tmp_path / "state", running_deployment(admin))
    for args, named in (
        (("--channels", "aws,ssh"), "unknown channel 'ssh'"),
        (("--egress-allow", "bad host"), "(egress_allow)"),
        (("--max-ttl", "soon"), "not a duration"),
        (("--commands", "Bad Name"), "(command)"),
        ((), "nothing to change"),
    ):
        result = deploy_cli(state, "policy", "set", *args)
        assert result.exit_code == 1, result.output
        assert named in result.output, result.output


def test_commands_outside_the_allowlist_are_refused_at_create(
    gov_manager: ManagerProcess, admin: ApiClient, tmp_path: Path
) -> None:
    dep = running_deployment(admin, commands=KNOWN_COMMANDS)
    state = customer_state(gov_manager, tmp_path / "state", dep)
    deploy_json(state, "policy", "set", "--commands", "noop")
    refused = create_command(admin, dep, "echo")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "COMMAND_NOT_ALLOWED" and error["field"] == "command"
    assert "allowed: noop" in error["message"]
    assert create_command(admin, dep, "noop").status_code == 201
    denied = admin.get(
        "/v1/audit", params={"deployment": dep.id, "action": "command.create"}
    ).json()["items"]
    assert [(r["outcome"], r["details"].get("code")) for r in denied] == [
        ("denied", "COMMAND_NOT_ALLOWED"),
        ("succeeded", None),
    ]
    deploy_json(state, "policy", "set", "--commands-all")
    assert create_command(admin, dep, "echo").status_code == 201
    # An empty list is nothing allowed, as for --channels: never "any" (it lifted the limit).
    assert deploy_json(state, "policy", "set", "--commands", "")["customer"]["commands"] == []
    assert create_command(admin, dep, "noop").status_code == 403


def test_the_access_switch_cancels_commands_and_holds_releases_until_it_is_back(
    gov_manager: ManagerProcess, admin: ApiClient, tmp_path: Path
) -> None:
    dep = running_deployment(admin, commands=KNOWN_COMMANDS)
    state = customer_state(gov_manager, tmp_path / "state", dep)
    with CommandAgent(gov_manager.ws_url, dep.token) as agent:
        running = create_command(admin, dep, "slow").json()
        offer = agent.command(command_id=running["id"])
        assert agent.ack(offer)["ok"] is True

        off = deploy_json(state, "policy", "set", "--access", "off")
        assert off["effective"]["debug"] == "forbidden" and off["effective"]["commands"] == []
        cancel = agent.next("command_cancel")
        assert cancel["command_id"] == running["id"]
        ended = admin.get(f"/v1/commands/{running['id']}", params={"wait": 5}).json()
        assert ended["state"] == "cancelled"

        refused = create_command(admin, dep, "echo")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "ACCESS_SUSPENDED"

        release = admin.create_release(
            {"type": "deployments", "deployments": [dep.id]},
            package=sample_package("held-release"),
        )
        held = admin.deployment(dep.id)
        assert held["desired_release"] == dep.release, "nothing new is sent while access is off"
        assert deploy_json(state, "policy", "show")["customer"]["held_release"] == release["id"]

        on = deploy_json(state, "policy", "set", "--access", "on")
        assert on["customer"]["held_release"] is None and on["effective"]["commands"] is None
        assert admin.deployment(dep.id)["desired_release"] == release["id"]
        agent.next("desired_release", where=lambda m: m["release_id"] == release["id"])
        assert create_command(admin, dep, "echo").status_code == 201
    actions = [
        (r["action"], r["outcome"])
        for r in admin.get("/v1/audit", params={"deployment": dep.id}).json()["items"]
    ]
    assert ("release.hold", "denied") in actions and ("release.deliver", "succeeded") in actions
    assert ("command.cancel", "succeeded") in actions
