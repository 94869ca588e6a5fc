"""How a pull-model session's agent leg starts and ends: revoking the session cuts the agent's
connection to the destination within a second (measured at the destination), the command is
stopped (exit 4), and the agent's tunnel is gone; a deployment without a connected agent cannot
be debugged at all, nor one whose agent cannot read its debug.json; a revoke while the tunnel
is being set up ends it as it opens; a tunnel lost to a manager
restart is dialled again once the agent is back, and a safe request caught in flight by that loss
is sent again on the new tunnel."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbg_world import World, pinned, restarted_mid_command
from debug_moto import MotoServer
from pull_world import (
    PullDeployment,
    debug_config,
    make_world,
    pull_manager_env,
    start_agent,
    wait_for_log,
)
from targets import Targets

from support.manager import ManagerProcess
from support.names import unique

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

EXIT_SESSION_ENDED = 4


def _open_session_id(world: World, process: subprocess.Popen[str]) -> str:
    sessions = [s for s in world.sessions() if s["state"] == "active"]
    assert len(sessions) == 1, (sessions, process.poll())
    return sessions[0]["id"]


def test_revoke_closes_the_agent_leg_within_a_second(
    world: World, targets: Targets, deployment: PullDeployment
) -> None:
    slow = targets.http.reset_slow()
    # The command outlives its request: it is the session's end that must stop it.
    script = f"curl -sS -N {targets.http.url('/slow')}; sleep 60"
    process = world.start_debug("bash", "-c", script)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "started\n"  # through the agent, held open
        assert slow.started.wait(10)
        session_id = _open_session_id(world, process)
        revoked_at = time.monotonic()
        revoked = world.admin.post(
            f"/v1/debug-sessions/{session_id}/revoke", json={"reason": "incident over"}
        )
        assert revoked.status_code == 200, revoked.text
        assert slow.disconnected.wait(5), "the agent never closed its connection to the target"
        assert slow.disconnected_at - revoked_at < 1.0
        assert process.wait(timeout=30) == EXIT_SESSION_ENDED
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "incident over" in process.stderr.read()
    wait_for_log(deployment.agent, f"debug tunnel of {session_id} closed", timeout=5)
    [request] = world.requests(session_id)
    assert request["target"] == f"http:GET {targets.http.url('/slow')}"
    assert request["outcome"] == "failed" and request["details"]["status"] == 200


def test_a_deployment_without_a_connected_agent_cannot_be_debugged(
    pull_manager: ManagerProcess, world: World
) -> None:
    admin = world.admin
    group = unique("bare")
    admin.create_group(group)
    bare = admin.onboard(admin.create_group_token(group), unique("idle"))["deployment"]
    opened = admin.post("/v1/debug-sessions", json={"deployment": bare["id"], "reason": "no agent"})
    assert opened.status_code == 409
    error = opened.json()["error"]
    assert (
        error["code"] == "DEBUG_UNAVAILABLE"
        and "no agent serving debug tunnels" in error["message"]
    )


def test_an_agent_whose_debug_config_cannot_be_read_is_not_debugged(
    pull_manager: ManagerProcess, moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    """The customer broke ``debug.json`` after the agent started: the agent does not open the
    tunnel (and logs why), the CLI says its agent did not, nothing runs."""
    broken = start_agent(pull_manager, moto, tmp_path, debug_config(moto, [targets.http]))
    world = make_world(pull_manager, broken, tmp_path)
    try:
        (tmp_path / "agent" / "debug.json").write_text("{not json")
        result = world.debug("python3", "-c", "print('ran')")
        assert result.returncode != 0 and "ran" not in result.stdout
        assert "its agent did not open the tunnel" in result.stderr
        wait_for_log(broken.agent, "debug.json is not readable JSON", timeout=5)
    finally:
        world.close()
        broken.agent.stop()


@pytest.mark.slow  # the manager restarted, the tunnel dropped: fault injection
def test_a_tunnel_lost_to_a_manager_restart_is_dialled_again_through_the_agent(
    moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    """Both the CLI's tunnel and the agent's connection drop: the redial is refused (409)
    until the agent is back, and then goes through."""
    manager = pinned(ManagerProcess(tmp_path / "manager", extra_env=pull_manager_env()))
    deployment = start_agent(manager, moto, tmp_path, debug_config(moto, [targets.http]))
    world = make_world(manager, deployment, tmp_path)
    try:
        session = restarted_mid_command(world)
        assert len(world.requests(session["id"])) == 2
    finally:
        world.close()
        deployment.agent.stop()
        manager.stop()


@pytest.mark.slow  # the manager restarted, the tunnel dropped: fault injection
def test_a_get_in_flight_when_the_tunnel_drops_is_sent_again_on_the_new_one(
    moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    """``curl`` never retries a 502: its GET, unanswered when the manager restarts, must be
    answered through the redialled tunnel (the target sees it twice; a POST would fail)."""
    manager = pinned(ManagerProcess(tmp_path / "manager", extra_env=pull_manager_env()))
    deployment = start_agent(manager, moto, tmp_path, debug_config(moto, [targets.http]))
    world = make_world(manager, deployment, tmp_path)
    late = targets.http.reset_slow()
    try:
        process = world.start_debug("curl", "-sS", "--fail", targets.http.url("/late"))
        assert late.started.wait(30), process.poll()
        manager.restart()  # both tunnels drop; the CLI redials once the agent is back
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
        assert out == "answered on call 2"
        assert "reconnecting" in err and "tunnel reconnected" in err
        assert late.disconnected.wait(10)  # the first call's leg was closed, not left hanging
    finally:
        world.close()
        deployment.agent.stop()
        manager.stop()


@pytest.mark.slow  # the manager restarted, the tunnel dropped: fault injection
def test_a_post_in_flight_when_the_tunnel_drops_is_not_sent_again(
    moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    """Sending a POST twice could do twice what it does: it fails (502) and the target saw it
    once; the session itself goes on (the CLI reconnects)."""
    manager = pinned(ManagerProcess(tmp_path / "manager", extra_env=pull_manager_env()))
    deployment = start_agent(manager, moto, tmp_path, debug_config(moto, [targets.http]))
    world = make_world(manager, deployment, tmp_path)
    late = targets.http.reset_slow()
    script = f"curl -sS --fail -d once {targets.http.url('/late')}; echo curl=$?"
    try:
        process = world.start_debug("bash", "-c", script)
        assert late.started.wait(30), process.poll()
        manager.restart()
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
        assert out.strip().endswith("curl=22")  # --fail: the 502 from the loopback proxy
        assert "502" in err
        assert late.calls == 1
    finally:
        world.close()
        deployment.agent.stop()
        manager.stop()


def test_a_revoke_while_the_agent_dials_its_leg_ends_the_tunnel_as_it_opens(
    world: World, targets: Targets, deployment: PullDeployment
) -> None:
    """The session is revoked after the tunnel's set-up read it (the manager is waiting for the
    agent to dial its leg: the agent is stopped) but before the tunnel was watched: once the
    agent dials, the tunnel ends at once — not at the session's expiry — and the command is not
    run."""
    seen = len(targets.http.server.seen)
    os.kill(deployment.agent.pid, signal.SIGSTOP)
    try:
        process = world.start_debug("curl", "-sS", targets.http.url("/hello"))
        deadline = time.monotonic() + 10
        while not [s for s in world.sessions() if s["state"] == "active"]:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        session_id = _open_session_id(world, process)
        time.sleep(0.5)  # the tunnel's handshake reached the manager, which waits for the dial
        revoked = world.admin.post(
            f"/v1/debug-sessions/{session_id}/revoke", json={"reason": "changed my mind"}
        )
        assert revoked.status_code == 200, revoked.text
    finally:
        os.kill(deployment.agent.pid, signal.SIGCONT)
    try:
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert code == 1, stderr  # the command never ran: a one-line error, the reason in it
    assert "was revoked by" in stderr and "changed my mind" in stderr
    assert targets.http.server.seen[seen:] == []


def test_the_agent_tells_the_manager_when_debug_json_comes_and_goes(
    pull_manager: ManagerProcess, moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    """The customer turns debugging off by removing ``debug.json`` and on by writing it, with
    the agent running: within seconds the manager refuses, then serves, a session."""
    found = start_agent(pull_manager, moto, tmp_path, debug_config(moto, [targets.http]))
    world = make_world(pull_manager, found, tmp_path)
    config_file = tmp_path / "agent" / "debug.json"
    saved = config_file.read_text()
    body = {"deployment": world.deployment_id, "reason": "toggling"}
    try:
        config_file.unlink()
        wait_for_log(found.agent, "no longer debug_limits, debug_tunnel_splice, debug_tunnels")
        # Its new connection announced no debugging: only then is the file's return a change
        # to it (written back in the moment between the two connections, it is not one).
        deadline = time.monotonic() + 30
        while found.agent.log_path.read_text().count("connected to the manager (") < 2:
            assert time.monotonic() < deadline, found.agent.log()
            time.sleep(0.05)
        refused = _eventually(lambda: world.admin.post("/v1/debug-sessions", json=body))
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "DEBUG_UNAVAILABLE"

        config_file.write_text(saved)
        wait_for_log(found.agent, "now also debug_limits, debug_tunnel_splice, debug_tunnels")
        ran = _eventually(lambda: world.debug("python3", "-c", "print('ran')"))
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == "ran"
    finally:
        world.close()
        found.agent.stop()


def _eventually(attempt: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``attempt()`` until it succeeds or ``timeout`` passes (the agent reconnects to tell the
    manager, which takes a moment after its log says so); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = attempt()
        ok = getattr(answer, "returncode", None) == 0 or getattr(answer, "status_code", 0) == 409
        if ok or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)
