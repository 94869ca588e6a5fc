"""Restarting the manager process loses nothing: everything that matters is in the database."""

from __future__ import annotations

from pathlib import Path

from support.agent import AgentSocket
from support.manager import ManagerProcess
from support.payloads import digest_of, sample_package


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
