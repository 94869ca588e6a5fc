"""How ``alien debug`` ends: the command exits, fails, is interrupted, or the session is revoked
or expires under it — and in every case the session is closed and its directory removed. And how
it does not end: a tunnel lost while the session is active (the manager restarted) is dialled
again, and the command's next request goes through.

The revocation and expiry tests measure how long a running command's traffic keeps flowing
after the session ended: the command is a boto3 loop printing a timestamped line per call."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from dbg_world import World, make_world, manager_env, pinned, restarted_mid_command
from debug_moto import MotoServer

from support.manager import ManagerProcess

CUTOFF_SECONDS = 1.0

LOOP = """
import time, boto3
from botocore.config import Config
sts = boto3.client("sts", config=Config(retries={"max_attempts": 1}))
while True:
    try:
        sts.get_caller_identity()
        print("ok", time.time(), flush=True)
    except Exception as exc:
        print("err", time.time(), str(exc).replace("\\n", " ")[:300], flush=True)
"""


@dataclass
class Traffic:
    ok: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def read_until_ok(self, process: subprocess.Popen[str], count: int) -> None:
        assert process.stdout is not None
        while len(self.ok) < count:
            line = process.stdout.readline()
            assert line, f"the command ended early: {process.stderr and process.stderr.read()}"
            self._add(line)

    def read_to_end(self, process: subprocess.Popen[str]) -> str:
        """Every remaining line, then the process's stderr."""
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            self._add(line)
        return process.stderr.read()

    def _add(self, line: str) -> None:
        if not line.endswith("\n"):  # the last line, cut short by the signal that stopped it
            return
        kind, stamp, *rest = line.split(" ", 2)
        if kind == "ok":
            self.ok.append(float(stamp))
        elif kind == "err":
            self.errors.append((float(stamp), rest[0] if rest else ""))


def _assert_cut_off(traffic: Traffic, ended_at: float, what: str) -> None:
    after = [t - ended_at for t in traffic.ok if t > ended_at]
    assert not after or max(after) <= CUTOFF_SECONDS, f"{what}: calls succeeded {after} s after"
    assert traffic.errors, f"{what}: the command saw no refusal"
    first_refusal = traffic.errors[0][0] - ended_at
    print(f"{what}: first refused call {first_refusal * 1000:.0f} ms after the session ended")
    assert first_refusal <= CUTOFF_SECONDS, f"{what}: first refusal after {first_refusal:.2f} s"


def test_revoking_stops_the_commands_traffic_within_a_second(world: World) -> None:
    process = world.start_debug("python3", "-c", LOOP)
    traffic = Traffic()
    traffic.read_until_ok(process, 5)
    session = world.latest_session()
    [live_dir] = world.session_dirs()
    revoked_at = time.time()
    response = world.admin.post(
        f"/v1/debug-sessions/{session['id']}/revoke", json={"reason": "incident closed"}
    )
    assert response.status_code == 200 and response.json()["state"] == "revoked"
    stderr = traffic.read_to_end(process)
    assert process.wait(timeout=30) == 4
    _assert_cut_off(traffic, revoked_at, "revoke")
    assert any("revoked" in message for _, message in traffic.errors)
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and "was revoked by" in last_line
    assert "incident closed" in last_line
    assert not live_dir.exists() and world.session_dirs() == []
    final = world.latest_session()
    assert final["state"] == "revoked" and final["exit_code"] == 4


def test_a_revoke_while_the_role_is_assumed_ends_the_tunnel_before_any_call(
    world: World, moto: MotoServer
) -> None:
    """The session is revoked after the tunnel's set-up read it (the manager is waiting for the
    deployment role's credentials: the cloud is stopped) but before the tunnel was watched:
    once the credentials come, the tunnel ends at once, and no call of the command's passes."""
    moto.process.send_signal(signal.SIGSTOP)
    try:
        process = world.start_debug("python3", "-c", LOOP)
        deadline = time.monotonic() + 10
        while not [s for s in world.sessions() if s["state"] == "active"]:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        session = world.latest_session()
        time.sleep(0.5)  # the tunnel's handshake reached the manager, which waits for the role
        revoked = world.admin.post(
            f"/v1/debug-sessions/{session['id']}/revoke", json={"reason": "changed my mind"}
        )
        assert revoked.status_code == 200, revoked.text
    finally:
        moto.process.send_signal(signal.SIGCONT)
    traffic = Traffic()
    try:
        stderr = traffic.read_to_end(process)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code != 0, stderr
    assert traffic.ok == []
    last_line = stderr.strip().splitlines()[-1]
    assert "was revoked by" in last_line and "changed my mind" in last_line
    assert world.session_dirs() == []


def test_expiry_stops_the_commands_traffic_within_a_second(world: World) -> None:
    process = world.start_debug("python3", "-c", LOOP, options=("--ttl", "4"))
    traffic = Traffic()
    traffic.read_until_ok(process, 1)
    session = world.latest_session()
    expires_at = datetime.fromisoformat(session["expires_at"]).timestamp()
    stderr = traffic.read_to_end(process)
    assert process.wait(timeout=30) == 4
    _assert_cut_off(traffic, expires_at, "expiry")
    assert "expired" in stderr.strip().splitlines()[-1]
    final = world.latest_session()
    assert final["state"] == "expired" and final["exit_code"] == 4
    assert world.session_dirs() == []


def test_exit_status_is_propagated_and_the_directory_removed(world: World) -> None:
    stale = world.session_root / "dbg-stale-from-a-killed-cli"
    stale.mkdir(parents=True, mode=0o700)
    (stale / ".owner.json").write_text(json.dumps({"pid": 2**22 + 7, "start_ticks": 1}))
    result = world.debug("bash", "-c", 'test -d "$(dirname "$AWS_CONFIG_FILE")" && exit 3')
    assert result.returncode == 3, result.stderr
    assert not stale.exists(), "a directory whose owner is gone is swept"
    assert world.session_dirs() == []
    session = world.latest_session()
    assert session["state"] == "closed" and session["exit_code"] == 3


def test_a_command_that_cannot_start_closes_the_session(world: World) -> None:
    result = world.debug("/nonexistent/tool")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot run '/nonexistent")
    assert world.session_dirs() == []
    assert world.latest_session()["state"] == "closed"


def test_sigint_closes_the_session_and_removes_the_directory(world: World) -> None:
    waiter = "import time; print('ready', flush=True); time.sleep(120)"
    process = world.start_debug("python3", "-c", waiter)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    [live_dir] = world.session_dirs()
    assert (live_dir / "aws-credentials").stat().st_mode & 0o777 == 0o600
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert not live_dir.exists() and world.session_dirs() == []
    session = world.latest_session()
    assert session["state"] == "closed" and session["exit_code"] == 130


def test_the_child_does_not_inherit_the_engineers_manager_token(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    result = world.debug("python3", "-c", dump)
    assert result.returncode == 0, result.stderr
    env = json.loads(out.read_text())
    assert "ALIEN_TOKEN" not in env and world.debugger_key not in env.values()
    session = world.latest_session()
    assert env["ALIEN_DEBUG_SESSION"] == session["id"]
    assert env["ALIEN_DEBUG_DEPLOYMENT"] == world.ref
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIAALIEN")


@pytest.mark.slow  # the manager restarted, the tunnel dropped: fault injection
def test_a_tunnel_lost_to_a_manager_restart_is_dialled_again(
    moto: MotoServer, tmp_path: Path
) -> None:
    manager = pinned(ManagerProcess(tmp_path / "manager", extra_env=manager_env(moto)))
    world = make_world(manager, moto, tmp_path)
    try:
        session = restarted_mid_command(world)
        assert [r["target"] for r in world.requests(session["id"])] == [
            "sts:GetCallerIdentity",
            "sts:GetCallerIdentity",
        ]
    finally:
        world.close()
        manager.stop()
