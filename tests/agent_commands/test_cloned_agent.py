"""A second agent with a deployment's identity — a cloned machine or state directory — is refused
while the first one serves, whether it tries over the WebSocket or by long-polling: commands run
on the first only, the manager shows the refusal on the deployment and audits it once, and the
clone takes over as soon as the first one stops; the clone's ``alien-deploy status`` says why it
is not connected."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import psutil
import pytest
from agent_deployments import Deployed, assert_clean, deploy
from agent_support import AgentProcess, PinnedManager
from typer.testing import CliRunner

from alien.cli.deploy import app as deploy_cli
from alien.commands import CommandsClient

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow

TAKEOVER_TIMEOUT = 20.0


def _clone(state_dir: Path, into: Path) -> None:
    """What copying a machine's disk gives: the same token and deployment, its own area."""
    shutil.copytree(
        state_dir,
        into,
        ignore=shutil.ignore_patterns("area", "agent.lock", "status.json", "instance"),
    )
    state = json.loads((into / "agent.json").read_text())
    state["area"] = str(into / "area")
    (into / "agent.json").write_text(json.dumps(state))


def _agent_of(client: CommandsClient, agents: list[AgentProcess]) -> AgentProcess:
    """The agent whose function answered an ``echo``."""
    pid = client.invoke("echo", {})["pid"]
    owners = [a for a in agents if psutil.Process(pid) in psutil.Process(a.pid).children(True)]
    assert len(owners) == 1, f"function {pid} belongs to {len(owners)} agents"
    return owners[0]


def _wait_log(agent: AgentProcess, text: str) -> None:
    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while text not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)


def _status_text(agent: AgentProcess) -> str:
    """``alien-deploy status`` as its user reads it, once the running agent reported a problem."""
    deadline = time.monotonic() + 15
    while True:
        result = CliRunner().invoke(deploy_cli, ["status", "--state-dir", str(agent.state_dir)])
        assert result.exit_code == 0, result.output
        if "problem:" in result.stdout or time.monotonic() > deadline:
            return result.stdout
        time.sleep(0.1)


@pytest.mark.parametrize("transport", ["websocket", "poll"])
def test_a_cloned_agent_is_refused_until_the_first_one_stops(
    manager: PinnedManager, tmp_path: Path, transport: str
) -> None:
    # A group of its own: the suite's fan-out tests address every deployment of "acme".
    first: Deployed = deploy(manager, tmp_path, group="clones", name=f"cloned-{transport}")
    _clone(first.agent.state_dir, tmp_path / "clone")
    clone = AgentProcess(tmp_path / "clone", manager.url, transport=transport, reconnect_max=0.5)
    clone.start("run")
    try:
        clone.wait_running(first.release)  # it restores the release on its own machine ...
        _wait_log(clone, "another agent serves this deployment")  # ... but is refused
        # The clone's admin sees why it is not connected.
        shown = _status_text(clone)
        assert "not connected" in shown and "another agent serves this deployment" in shown

        with first.admin() as admin:
            described = admin.get_deployment(first.deployment_id)
        audit = httpx.get(
            f"{manager.url}/v1/audit",
            params={"deployment": first.deployment_id, "action": "access.denied"},
            headers={"Authorization": f"Bearer {manager.admin_key}"},
        ).json()
        conflict = described.agent_conflict
        assert described.connected and conflict is not None
        assert conflict.instance == (tmp_path / "clone" / "instance").read_text().strip()
        assert conflict.holder_instance == (first.agent.state_dir / "instance").read_text().strip()
        assert conflict.peer == "127.0.0.1" and conflict.attempts >= 1
        refusals = [r for r in audit["items"] if r["target"] == conflict.instance]
        assert len(refusals) == 1, audit  # audited once, however often the clone retries
        assert refusals[0]["details"]["code"] == "AGENT_CONFLICT"

        with first.client() as client:
            for _ in range(5):
                assert _agent_of(client, [first.agent, clone]) is first.agent

            first.agent.stop()
            _wait_log(clone, "connected to the manager")
            assert _agent_of(client, [clone]) is clone
    finally:
        clone.stop()
        first.agent.stop()
    assert_clean(clone.log())
