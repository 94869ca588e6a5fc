"""Revocation cuts live access within a second, whichever way it comes: an admin revokes the
session, an admin revokes the API key that opened it, or the customer switches vendor access
off. Each test runs ``alien debug -- <boto3 loop>`` (a call per line, timestamped) through a real
tunnel to a signature-checking moto, revokes, and measures revoke → first refused request; new
sessions are refused afterwards."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dbg_world import World
from test_dbg_lifecycle import LOOP

CUTOFF_SECONDS = 1.0


@dataclass
class Traffic:
    """The loop's output: when calls succeeded, when (and why) they failed."""

    ok: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def read(self, process: subprocess.Popen[str], until_ok: int | None = None) -> None:
        """Lines until ``until_ok`` calls succeeded, or to the end. A line cut short when the
        command was stopped mid-write is ignored."""
        assert process.stdout is not None
        for line in process.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            stamp, _, message = rest.partition(" ")
            try:
                when = float(stamp)
            except ValueError:
                continue
            if kind == "ok":
                self.ok.append(when)
            elif kind == "err":
                self.errors.append((when, message))
            if until_ok is not None and len(self.ok) >= until_ok:
                return
        assert until_ok is None, "the command ended before its calls went through"


def cut_off_after(world: World, revoke: Callable[[str], None], what: str) -> float:
    """Run the loop, ``revoke(session_id)`` once it flows, and return revoke → first refusal
    (seconds), after checking nothing succeeded later than the cut-off."""
    process = world.start_debug("python3", "-c", LOOP)
    traffic = Traffic()
    traffic.read(process, until_ok=3)
    session_id = world.latest_session()["id"]
    revoked_at = time.time()
    revoke(session_id)
    traffic.read(process)
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.wait(timeout=30) == 4, stderr
    late = [t - revoked_at for t in traffic.ok if t > revoked_at + CUTOFF_SECONDS]
    assert not late, f"{what}: calls still succeeded {late} s after the revocation"
    assert traffic.errors, f"{what}: the command saw no refusal"
    latency = traffic.errors[0][0] - revoked_at
    print(f"{what}: first refused request {latency * 1000:.0f} ms after the revocation")
    assert latency <= CUTOFF_SECONDS, f"{what}: first refusal after {latency:.2f} s"
    ended = world.admin.get(f"/v1/debug-sessions/{session_id}")
    assert ended.status_code == 200 and ended.json()["state"] == "revoked", ended.text
    return latency


def test_revoking_the_session(world: World) -> None:
    def revoke(session_id: str) -> None:
        response = world.admin.post(f"/v1/debug-sessions/{session_id}/revoke", json={})
        assert response.status_code == 200

    cut_off_after(world, revoke, "session revoke")


def test_revoking_the_api_key_that_opened_it(world: World) -> None:
    keys = world.admin.get("/v1/api-keys").json()["items"]
    # A key's id is key_<lookup>, and the token ax_key_<lookup>_<secret>.
    [engineer] = [k for k in keys if world.debugger_key.startswith(f"ax_key_{k['id'][4:]}_")]

    def revoke(_: str) -> None:
        assert world.admin.delete(f"/v1/api-keys/{engineer['id']}").status_code == 200

    cut_off_after(world, revoke, "API key revoke")
    session = world.latest_session()
    assert session["end_reason"] == f"the API key {engineer['id']} was revoked"
    again = world.debug("true")
    assert again.returncode == 1 and "invalid or revoked token" in again.stderr
    record = world.admin.get("/v1/audit", params={"target": engineer["id"]}).json()["items"]
    assert [r["action"] for r in record] == ["key.create", "key.revoke"]
    assert record[-1]["details"]["revoked_sessions"] == [session["id"]]


def test_deleting_the_deployment(world: World) -> None:
    """The manager forgets the deployment: nothing may keep reaching it through a session."""

    def delete(_: str) -> None:
        assert world.admin.delete(f"/v1/deployments/{world.ref}").status_code == 204

    cut_off_after(world, delete, "deployment delete")
    [revoked] = world.admin.get("/v1/audit", params={"action": "debug.session.revoke"}).json()[
        "items"
    ][-1:]
    assert revoked["details"]["end_reason"].endswith("was deleted")


def test_the_customer_switching_access_off(world: World) -> None:
    issued = world.admin.post("/v1/customer-credentials", json={"deployment": world.ref})
    customer = world.client(issued.json()["token"])

    def revoke(_: str) -> None:
        switched = customer.request("PATCH", "/v1/customer/policy", json={"access": False})
        assert switched.status_code == 200

    cut_off_after(world, revoke, "customer access switch")
    assert "the customer suspended vendor access" in world.latest_session()["end_reason"]
    engineer = world.client(world.debugger_key)
    body = {"deployment": world.ref, "reason": "after the switch"}
    refused = engineer.post("/v1/debug-sessions", json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ACCESS_SUSPENDED"
    back = customer.request("PATCH", "/v1/customer/policy", json={"access": True})
    assert back.status_code == 200
    assert engineer.post("/v1/debug-sessions", json=body).status_code == 201, "access is back"
