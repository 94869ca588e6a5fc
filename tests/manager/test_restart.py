"""Restarting the manager process loses nothing: everything that matters is in the database;
and a start that failed loses nothing either: it never consumed the one print of the admin key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alien.manager.server import ADMIN_KEY_PREFIX
from support.agent import AgentSocket
from support.manager import ManagerProcess
from support.payloads import digest_of, sample_package

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow


def test_restart_keeps_releases_deployments_and_desired_state(manager: ManagerProcess) -> None:
    with manager.client() as admin:
        group = admin.create_group("prod")["name"]
        group_token = admin.create_group_token(group)
        onboarded = admin.onboard(group_token, "acme")
        dep_id, dep_token = onboarded["deployment"]["id"], onboarded["token"]
        package = sample_package("persisted")
        release = admin.create_release({"type": "group", "group": group}, package=package)
        before = admin.deployment(dep_id)

    manager.restart()

    with manager.client() as admin:
        after = admin.deployment("prod/acme")
        assert after["id"] == dep_id
        assert after["desired_release"] == release["id"] == before["desired_release"]
        described = admin.get(f"/v1/releases/{release['id']}").json()
        assert described["manifest_digest"] == release["manifest_digest"]
        assert described["deployments"] == [dep_id]
        download = admin.get(f"/v1/releases/{release['id']}/package")
        assert digest_of(download.content) == digest_of(package)
        # tokens survive too: the group token still onboards, the agent still connects
        assert (
            admin.onboard(group_token, "globex")["deployment"]["desired_release"] == release["id"]
        )
    with AgentSocket(manager.ws_url, dep_token) as agent:
        agent.hello()
        assert agent.expect("desired_release")["release_id"] == release["id"]


def test_first_start_prints_an_admin_key_once(tmp_path: Path) -> None:
    proc = ManagerProcess(tmp_path / "fresh", install_admin_key=False)
    try:
        proc.start()
        key = proc.printed_admin_key
        assert key is not None and key.startswith("ax_key_")
        with proc.client() as admin:
            assert admin.get("/v1/api-keys").json()["items"][0]["role"] == "admin"
        proc.restart()
        assert proc.printed_admin_key is None  # never shown again
        with proc.client(key) as admin:
            assert admin.get("/v1/api-keys").status_code == 200
        assert key not in proc.log(tail=None)  # and never logged
    finally:
        proc.stop()


def _start_with_generated_key(data_dir: Path, root: Path) -> str:
    """Start a manager on ``data_dir`` (no ``ALIEN_ADMIN_KEY``); the admin key it printed, after
    checking that it works."""
    proc = ManagerProcess(root, install_admin_key=False, data_dir=data_dir)
    try:
        proc.start()
        key = proc.printed_admin_key
        assert key is not None and key.startswith("ax_key_"), proc.log()
        with proc.client(key) as admin:
            assert admin.get("/v1/api-keys").json()["items"][0]["role"] == "admin"
        return key
    finally:
        proc.stop()


def test_a_first_start_on_a_port_in_use_keeps_the_admin_key_for_the_next(tmp_path: Path) -> None:
    failed = ManagerProcess(tmp_path / "failed", install_admin_key=False)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        failed.port = held.getsockname()[1]
        failed.launch()
        with pytest.raises(AssertionError, match="exited during start"):
            failed.wait_started()
    assert failed.printed_admin_key is None  # no key printed by the failed start...
    assert failed.log().strip().splitlines()[-1].startswith("error: cannot listen on 127.0.0.1:")
    _start_with_generated_key(failed.data_dir, tmp_path / "good")  # ...the good one prints it


def test_a_first_start_whose_app_start_up_fails_keeps_the_admin_key_for_the_next(
    tmp_path: Path,
) -> None:
    """Past every check and with the socket bound, the app's own start-up (its lifespan) can
    still fail: the key is created only once the manager serves, so it is not lost then."""
    data_dir = tmp_path / "data"
    script = (
        "import sys\n"
        "import alien.manager.app as manager_app\n"
        "async def broken(served):\n"
        "    raise RuntimeError('start-up broken on purpose')\n"
        "manager_app.warm_routes = broken\n"
        f"sys.argv = ['alien', 'serve', '--data-dir', {str(data_dir)!r}, '--port', '0']\n"
        "from alien.cli.main import app\n"
        "app()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    shown = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, shown
    assert "start-up broken on purpose" in done.stderr, shown  # uvicorn logged why
    last = done.stderr.strip().splitlines()[-1]
    assert last == "error: the manager's start-up failed (the log above says why)", shown
    assert ADMIN_KEY_PREFIX not in done.stdout and "ax_key_" not in done.stdout, shown
    _start_with_generated_key(data_dir, tmp_path / "good")
