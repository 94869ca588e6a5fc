"""Agents and manager dying: nothing is lost, the last good release keeps serving, work resumes.

* the manager is SIGKILLed and kept down (2 s here, 10 s in the slow variant), then restarted on
  the same data dir and port: the agents served all along, reconnect, and take the next release;
* an agent is SIGKILLed: its functions stop with it; ``run`` (and ``up`` without a token)
  resume the SAME deployment on the same ingress URL; ``status``/``down`` see and remove it;
* an agent that loses its package cache while an update is in flight, and whose update then
  fails, rolls back to the last good release explicitly (``rollback_*`` events).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from agent_support import AgentProcess, PinnedManager, admin_client, write_app
from typer.testing import CliRunner

from alien.cli.deploy import app as deploy_cli
from alien.client import ClientConfig, ManagerClient
from alien.client.models import Deployment
from alien.client.publish import publish
from alien.errors import Unauthenticated

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow

RECONNECT_LIMIT = 20.0


def _wait_reconnected(admin: ManagerClient, dep_id: str, since: datetime) -> Deployment:
    """Poll (with a deadline) until the agent is connected again and has checked in since then."""
    deadline = time.monotonic() + RECONNECT_LIMIT
    while True:
        dep = admin.get_deployment(dep_id)
        if dep.connected and dep.last_heartbeat_at is not None and dep.last_heartbeat_at >= since:
            return dep
        assert time.monotonic() < deadline, f"{dep_id} did not reconnect: {dep}"
        time.sleep(0.1)


def _manager_outage(
    manager: PinnedManager,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
    down_for: float,
) -> None:
    admin = admin_client(manager)
    admin.create_group("ops")
    token = admin.create_group_token("ops").token
    agents = [agent_factory(manager, name, token).start() for name in ("east", "west")]
    app = write_app(tmp_path / "app", "v1")
    v1 = publish(admin, app, {"type": "all"}).release
    for agent in agents:
        agent.wait_running(v1.id)
        assert admin.wait_deployment(agent.deployment_id, release=v1.id, timeout=30).outcome == (
            "matched"
        )
    before = {a.deployment_id: admin.get_deployment(a.deployment_id) for a in agents}
    admin.close()

    manager.kill()
    killed = time.monotonic()
    for agent in agents:
        assert agent.get().text == "v1"  # served while the manager is gone
    time.sleep(max(0.0, down_for - (time.monotonic() - killed)))  # the outage itself
    for agent in agents:
        assert agent.get().text == "v1"
    restarted = datetime.now(UTC)
    manager.start()

    with admin_client(manager) as admin:
        for agent in agents:
            after = _wait_reconnected(admin, agent.deployment_id, restarted)
            old = before[agent.deployment_id]
            assert (after.id, after.group, after.name, after.state) == (
                old.id,
                "ops",
                old.name,
                "running",
            )
            assert after.current_release == after.desired_release == v1.id
        assert [g.name for g in admin.list_groups()] == ["ops"]
        assert admin.get_release(v1.id).package_digest == v1.package_digest

        write_app(app, "v2")
        v2 = publish(admin, app, {"type": "all"}).release
        for agent in agents:
            result = admin.wait_deployment(agent.deployment_id, release=v2.id, timeout=30)
            assert result.outcome == "matched", agent.log()
            assert agent.get().text == "v2"


def test_manager_killed_for_a_moment(
    pinned_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    _manager_outage(pinned_manager, agent_factory, tmp_path, down_for=2.0)


def test_manager_killed_for_ten_seconds(
    pinned_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    _manager_outage(pinned_manager, agent_factory, tmp_path, down_for=10.0)


def _status(agent: AgentProcess) -> dict:
    args = ["status", "--state-dir", str(agent.state_dir), "--json"]
    result = CliRunner().invoke(deploy_cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _wait_status(agent: AgentProcess, **expected: object) -> dict:
    deadline = time.monotonic() + 15
    while True:
        status = _status(agent)
        if all(status.get(k) == v for k, v in expected.items()):
            return status
        assert time.monotonic() < deadline, f"status never had {expected}: {status}"
        time.sleep(0.1)


def test_a_killed_agent_resumes_the_same_deployment(
    sqlite_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    admin = admin_client(sqlite_manager)
    admin.create_group("solo")
    agent = agent_factory(sqlite_manager, "prod", admin.create_group_token("solo").token).start()
    dep_id = agent.deployment_id
    v1 = publish(admin, write_app(tmp_path / "app", "v1"), {"type": "all"}).release
    urls = agent.wait_running(v1.id)
    status = _wait_status(agent, state="running", connected=True)
    assert status["release"] == v1.id and status["urls"] == urls and status["agent_running"]
    function_pid = status["functions"][0]["pid"]

    agent.kill()
    psutil.Process(function_pid).wait(timeout=15)  # the function stops with its agent
    assert _status(agent)["agent_running"] is False

    agent.start("run")
    assert agent.deployment_id == dep_id
    assert agent.wait_running(v1.id) == urls  # same ingress URL as before
    assert agent.get().text == "v1"
    assert agent.stop() == 0, agent.log()

    agent.token = None  # `up` again without the group token resumes too
    agent.start("up")
    assert agent.deployment_id == dep_id
    agent.wait_running(v1.id)
    assert [d.id for d in admin.list_deployments(group="solo")] == [dep_id]
    assert _wait_status(agent, state="running", connected=True)["deployment_id"] == dep_id

    token = (agent.state_dir / "token").read_text().strip()
    down = CliRunner().invoke(deploy_cli, ["down", "--state-dir", str(agent.state_dir), "--yes"])
    assert down.exit_code == 0, down.output
    assert agent.wait() == 0, agent.log()  # down stopped it, cleanly
    assert not agent.state_dir.exists()
    assert admin.get_deployment(dep_id).state == "deleted"
    # Nothing speaks for a torn-down deployment any more.
    gone = ManagerClient(ClientConfig(base_url=sqlite_manager.url, token=token))
    with gone, pytest.raises(Unauthenticated):
        gone.get_deployment(dep_id)


def test_lost_cache_and_failed_update_roll_back_to_the_last_good_release(
    sqlite_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    admin = admin_client(sqlite_manager)
    admin.create_group("careful")
    agent = agent_factory(sqlite_manager, "prod", admin.create_group_token("careful").token)
    agent.start()
    app = write_app(tmp_path / "app", "v1")
    v1 = publish(admin, app, {"type": "all"}).release
    agent.wait_running(v1.id)

    write_app(app, "v2", broken=True, slow_import=3)
    v2 = publish(admin, app, {"type": "all"}).release
    assert admin.wait_deployment(agent.deployment_id, states=("updating",), timeout=30).outcome == (
        "matched"
    )
    agent.kill()  # mid-update
    shutil.rmtree(agent.state_dir / "packages")  # and the disk cache is gone

    agent.start("run")
    result = admin.wait_deployment(agent.deployment_id, states=("update_failed",), timeout=60)
    dep = result.deployment
    assert result.outcome == "matched", agent.log()
    assert (dep.current_release, dep.failed_release, dep.last_good_release) == (v1.id, v2.id, v1.id)
    assert dep.error is not None and "boom: v2 is broken" in dep.error
    agent.wait_running(v1.id)
    assert agent.get().text == "v1"
