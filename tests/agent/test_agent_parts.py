"""The agent's parts that need no processes: its state dir, decisions, errors and teardown."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alien.agent.config import AgentConfig
from alien.agent.control import down, local_status
from alien.agent.converge import Converger, one_line
from alien.agent.link import ManagerLink
from alien.agent.packages import PackageCache
from alien.agent.state import AgentState, StateDir
from alien.cli.deploy import app as deploy_cli
from alien.client import AsyncManagerClient, ClientConfig
from alien.errors import Conflict, NotFound, PlatformError
from alien.platforms.local.area import Area
from alien.platforms.local.platform import LocalPlatform
from alien.protocol.deployment import ActionKind, DeploymentState, DeploymentStatus

UNREACHABLE = "http://127.0.0.1:9"


def _onboarded(root: Path) -> tuple[StateDir, AgentState]:
    state_dir = StateDir(root)
    state = AgentState(
        manager_url=UNREACHABLE,
        deployment_id="dep_test",
        deployment_name="prod",
        group="acme",
        area=str(state_dir.default_area),
    )
    state_dir.write_token("ax_dep_0123456789abcdef_" + "s" * 43)
    state_dir.save(state)
    return state_dir, state


def test_state_dir_is_private_and_locked(tmp_path: Path) -> None:
    state_dir, state = _onboarded(tmp_path / "state")
    assert stat.S_IMODE(state_dir.root.stat().st_mode) == 0o700
    for path in (state_dir.token_file, state_dir.state_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state_dir.load().model_dump(exclude={"updated_at"}) == state.model_dump(
        exclude={"updated_at"}
    )
    assert state_dir.read_token().startswith("ax_dep_")

    assert state_dir.running_pid() is None
    state_dir.lock()
    try:
        assert state_dir.running_pid() == os.getpid()
        with pytest.raises(Conflict) as err:
            StateDir(tmp_path / "state").lock()
        assert err.value.code == "AGENT_RUNNING" and str(os.getpid()) in err.value.message
    finally:
        state_dir.unlock()
    assert state_dir.running_pid() is None

    with pytest.raises(NotFound) as missing:
        StateDir(tmp_path / "empty").load()
    assert missing.value.field == "state_dir"


def test_only_a_blank_state_dir_is_removed(tmp_path: Path) -> None:
    """What ``lock`` made goes; a token (a registered deployment) or anything else keeps it all."""
    blank = StateDir(tmp_path / "blank")
    blank.lock()
    blank.unlock()
    assert blank.remove_if_blank() and not blank.root.exists()

    holding, _ = _onboarded(tmp_path / "onboarded")
    assert not holding.remove_if_blank() and holding.token_file.exists()

    half = StateDir(tmp_path / "half")
    half.ensure()
    (half.downloads_dir / "partial").write_bytes(b"x")
    assert not half.remove_if_blank() and (half.downloads_dir / "partial").exists()


def _converger(tmp_path: Path, running: str | None) -> Converger:
    state_dir, state = _onboarded(tmp_path / "state")
    client = AsyncManagerClient(ClientConfig(base_url=UNREACHABLE, token="x"))
    link = ManagerLink(client, "x", AgentConfig(), current_release=lambda: running)
    converger = Converger(
        link,
        LocalPlatform(Area(state.area)),
        PackageCache(state_dir.packages_dir, state_dir.downloads_dir),
        state_dir,
        state,
        announce=lambda release, status: None,
    )
    converger.running = running
    return converger


def test_decisions_include_repairing_drift(tmp_path: Path) -> None:
    running = DeploymentStatus(
        state=DeploymentState.RUNNING,
        provisioned=True,
        current_release="rel_a",
        desired_release="rel_a",
        last_good_release="rel_a",
    )
    # What the manager records runs here: nothing to do.
    assert _converger(tmp_path / "1", "rel_a").next_action(running).kind is ActionKind.IDLE
    # It records rel_a, but nothing (or something else) runs: deploy rel_a again.
    repair = _converger(tmp_path / "2", None).next_action(running)
    assert (repair.kind, repair.release, repair.resume) == (ActionKind.DEPLOY, "rel_a", False)
    # A new desired release wins over the repair.
    wanted = running.model_copy(update={"desired_release": "rel_b"})
    assert _converger(tmp_path / "3", None).next_action(wanted).release == "rel_b"
    # A release that just failed is not retried in a loop.
    failed = DeploymentStatus(
        state=DeploymentState.UPDATE_FAILED,
        provisioned=True,
        current_release="rel_a",
        desired_release="rel_b",
        last_good_release="rel_a",
        failed_release="rel_b",
        error="boom",
    )
    assert _converger(tmp_path / "4", "rel_a").next_action(failed).kind is ActionKind.IDLE


def test_errors_become_one_bounded_line() -> None:
    error = PlatformError("function api exited\nTraceback:\n  " + "x" * 9000 + "\nValueError: end")
    line = one_line(error)
    assert "\n" not in line and len(line) <= 4000
    assert line.startswith("function api exited Traceback:") and line.endswith("ValueError: end")
    assert one_line(RuntimeError("short")) == "RuntimeError: short"


def test_down_keeps_the_token_when_the_manager_is_unreachable(tmp_path: Path) -> None:
    state_dir, state = _onboarded(tmp_path / "state")
    (state_dir.packages_dir / "rel_a").mkdir(parents=True)
    area = Area(state.area)
    area.ensure()
    (tmp_path / "state" / "notes.txt").write_text("the user's own file stays")

    status = local_status(state_dir)
    assert (status["agent_running"], status["release"], status["urls"]) == (False, None, {})

    result = asyncio.run(down(state_dir))
    assert result.deployment == "acme/prod" and not result.told_manager
    assert result.warning is not None and "cannot reach the manager" in result.warning
    assert not area.root.exists()  # torn down here: what the customer asked for
    # ... but what telling the manager later needs stays, for `down` run again
    assert state_dir.state_file.exists() and state_dir.token_file.exists()
    assert (tmp_path / "state" / "notes.txt").exists()

    again = CliRunner().invoke(deploy_cli, ["down", "--state-dir", str(state_dir.root), "--yes"])
    assert again.exit_code == 1, again.output  # not "done": the manager still lists it
    assert again.stdout == "alien-deploy: acme/prod torn down here\n"
    [line] = again.stderr.splitlines()
    assert line.startswith("error: the manager was not told: cannot reach the manager")
    assert line.endswith(
        f"run alien-deploy down again once it is reachable (the state dir keeps what that "
        f"needs), or delete {state_dir.root} to forget the deployment without telling the manager"
    )
