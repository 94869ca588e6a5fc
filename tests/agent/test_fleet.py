"""A manager and two agents (two deployments in one group), all real processes on loopback.

Release v1 → both serve v1 through their ingress; v2 → both converge within 5 s of the release
and frozen resources are byte-identical before and after; a broken v3 → both keep serving v2,
the deployments are ``update_failed`` and the error is visible in ``alien deployments describe``.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from agent_support import AgentProcess, PinnedManager, admin_client, frozen_snapshot, write_app
from typer.testing import CliRunner

from alien.cli.main import app as alien_cli
from alien.client.publish import publish

CONVERGE_LIMIT = 5.0


def test_two_agents_converge_keep_frozen_data_and_survive_a_broken_release(
    pinned_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    admin = admin_client(pinned_manager)
    admin.create_group("fleet")
    token = admin.create_group_token("fleet").token
    agents = [agent_factory(pinned_manager, name, token).start() for name in ("one", "two")]
    group = {"type": "group", "group": "fleet"}
    app = write_app(tmp_path / "app", "v1")

    v1 = publish(admin, app, group).release
    assert sorted(v1.deployments) == sorted(a.deployment_id for a in agents)
    for agent in agents:
        agent.wait_running(v1.id)
        assert agent.get().text == "v1"
        assert agent.put(f"/data/page-{agent.name}", b"customer data").text == "stored"
        assert admin.wait_deployment(agent.deployment_id, release=v1.id, timeout=30).outcome == (
            "matched"
        )
    before = [frozen_snapshot(agent.area) for agent in agents]
    assert all(snap["files"] for snap in before)

    # v2 changes the code and a frozen queue's configuration (which must be ignored).
    write_app(app, "v2", timeout=99)
    started = time.monotonic()
    v2 = publish(admin, app, group).release
    for agent in agents:
        result = admin.wait_deployment(agent.deployment_id, release=v2.id, timeout=CONVERGE_LIMIT)
        assert result.outcome == "matched", f"{agent.name}: {result.deployment}\n{agent.log()}"
    took = time.monotonic() - started
    assert took < CONVERGE_LIMIT, f"converged in {took:.2f}s"
    for agent, snap in zip(agents, before, strict=True):
        agent.wait_running(v2.id)
        assert agent.get().text == "v2"
        assert frozen_snapshot(agent.area) == snap

    write_app(app, "v3", broken=True)
    v3 = publish(admin, app, group).release
    runner = CliRunner()
    env = {"ALIEN_MANAGER_URL": pinned_manager.url, "ALIEN_API_KEY": pinned_manager.admin_key}
    for agent in agents:
        result = admin.wait_deployment(agent.deployment_id, release=v3.id, timeout=30)
        assert result.outcome == "failed"
        dep = result.deployment
        assert (dep.state, dep.current_release, dep.failed_release) == (
            "update_failed",
            v2.id,
            v3.id,
        )
        assert dep.error is not None and "boom: v3 is broken" in dep.error
        assert agent.get().text == "v2"  # the last good release kept serving
        describe = ["deployments", "describe", f"fleet/{agent.name}"]
        shown = runner.invoke(alien_cli, describe, env=env)
        assert shown.exit_code == 0, shown.output
        assert "update_failed" in shown.stdout and "boom: v3 is broken" in shown.stdout
        instance = (agent.state_dir / "instance").read_text().strip()
        assert f"(websocket, {instance} from 127.0.0.1, since " in shown.stdout  # who serves it
        waited = runner.invoke(
            alien_cli, ["deployments", "wait", agent.deployment_id, "--release", v3.id], env=env
        )
        assert waited.exit_code == 1
        assert waited.stderr.count("\n") == 1 and "failed to run" in waited.stderr

    # A good release after the broken one is taken again.
    write_app(app, "v4")
    v4 = publish(admin, app, group).release
    for agent in agents:
        assert admin.wait_deployment(agent.deployment_id, release=v4.id, timeout=30).outcome == (
            "matched"
        )
        assert admin.get_deployment(agent.deployment_id).state == "running"
