"""The agent channel over WebSocket, against a real manager process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from support.agent import AgentSocket
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique
from support.payloads import digest_of, sample_package

PUSH_LATENCY_LIMIT = 0.5  # seconds from the release's 201 to the agent holding desired_release


def _onboard(admin: ApiClient) -> tuple[dict[str, Any], str]:
    group = admin.create_group(unique("grp"))["name"]
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    return onboarded["deployment"], onboarded["token"]


def _release_for(admin: ApiClient, dep_id: str, package: bytes | None = None) -> dict[str, Any]:
    return admin.create_release(
        {"type": "deployments", "deployments": [dep_id]},
        package=package if package is not None else sample_package(unique("pkg")),
    )


def _wait(admin: ApiClient, dep_id: str, **params: Any) -> dict[str, Any]:
    response = admin.get(f"/v1/deployments/{dep_id}/wait", params={"timeout": 10, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_release_is_pushed_at_once(shared_manager: ManagerProcess, admin: ApiClient) -> None:
    dep, token = _onboard(admin)
    with AgentSocket(shared_manager.ws_url, token) as agent:
        welcome = agent.hello()
        assert welcome["deployment_id"] == dep["id"]
        assert welcome["deployment_name"] == dep["name"]
        assert welcome["status"]["state"] == "pending"
        assert welcome["heartbeat_interval"] > 0
        assert admin.deployment(dep["id"])["connected"] is True

        package = sample_package(unique("pkg"))
        release = _release_for(admin, dep["id"], package)
        created = time.monotonic()
        pushed = agent.expect("desired_release", timeout=5)
        latency = time.monotonic() - created
        assert latency < PUSH_LATENCY_LIMIT, f"push took {latency:.3f}s"

    assert pushed["release_id"] == release["id"]
    assert pushed["manifest_digest"] == release["manifest_digest"]
    assert pushed["package_digest"] == digest_of(package)
    assert pushed["package_size"] == len(package)
    assert pushed["manifest"]["name"] == "my-app"
    download = admin.with_token(token).get(pushed["package_url"])
    assert download.status_code == 200 and digest_of(download.content) == pushed["package_digest"]


def test_reconnect_gets_the_desired_release_again(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    release = _release_for(admin, dep["id"])  # created while no agent is connected
    for _ in range(2):
        with AgentSocket(shared_manager.ws_url, token) as agent:
            agent.hello()
            assert agent.expect("desired_release")["release_id"] == release["id"]
    assert _wait(admin, dep["id"], state="pending")["deployment"]["connected"] is False


def test_lifecycle_events_update_the_deployment(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    release = _release_for(admin, dep["id"])["id"]
    with AgentSocket(shared_manager.ws_url, token) as agent:
        agent.hello(agent_version="agent/9")
        agent.expect("desired_release")
        agent.report({"type": "provision_started"})
        agent.report({"type": "provisioned"})
        agent.report({"type": "deploy_started", "release": release})
        agent.report({"type": "deploy_succeeded", "release": release}, detail={"functions": 1})
        done = _wait(admin, dep["id"], state="running", release=release)
    assert done["outcome"] == "matched"
    got = done["deployment"]
    assert (got["state"], got["current_release"], got["last_good_release"]) == (
        "running",
        release,
        release,
    )
    assert got["provisioned"] is True and got["error"] is None
    assert got["status_detail"] == {"functions": 1}
    assert got["agent_version"] == "agent/9"
    assert got["last_heartbeat_at"] is not None


def test_failed_deploy_is_recorded_and_ends_a_wait(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    release = _release_for(admin, dep["id"])["id"]
    with AgentSocket(shared_manager.ws_url, token) as agent:
        agent.hello()
        agent.expect("desired_release")
        for event in (
            {"type": "provision_started"},
            {"type": "provisioned"},
            {"type": "deploy_started", "release": release},
            {"type": "deploy_failed", "release": release, "error": "boom"},
        ):
            agent.report(event)
        result = _wait(admin, dep["id"], state="running", release=release)
    assert result["outcome"] == "failed"
    assert result["deployment"]["state"] == "failed"
    assert result["deployment"]["error"] == "boom"
    assert result["deployment"]["failed_release"] == release


def test_refused_messages_get_an_error_and_the_channel_stays(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    with AgentSocket(shared_manager.ws_url, token) as agent:
        agent.send({"v": 1, "type": "heartbeat"})
        assert agent.expect("error")["code"] == "HELLO_REQUIRED"
        agent.hello()
        cases = [
            ("not json", "VALIDATION_ERROR", "message"),
            ({"v": 1, "type": "teleport"}, "UNKNOWN_MESSAGE_TYPE", "type"),
            ({"v": 7, "type": "heartbeat"}, "UNSUPPORTED_PROTOCOL_VERSION", "v"),
            ({"v": 1, "type": "heartbeat", "extra": 1}, "VALIDATION_ERROR", "extra"),
            (
                {"v": 1, "type": "status", "event": {"type": "retry_requested"}},
                "VALIDATION_ERROR",
                "event",
            ),
            (
                {"v": 1, "type": "status", "event": {"type": "deploy_started", "release": "rel_x"}},
                "UNKNOWN_RELEASE",
                "event.release",
            ),
        ]
        for message, code, field in cases:
            agent.send(message)
            error = agent.expect("error")
            assert (error["code"], error["field"]) == (code, field), error
        agent.report({"type": "provisioned"})  # not allowed while pending
        illegal = agent.expect("error")
        assert illegal["code"] == "ILLEGAL_TRANSITION"
        assert illegal["status"]["state"] == "pending"
        # still usable: a legal report goes through
        agent.report({"type": "provision_started"})
        assert _wait(admin, dep["id"], state="provisioning")["outcome"] == "matched"


def test_deleting_the_deployment_closes_its_channel(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    with AgentSocket(shared_manager.ws_url, token) as agent:
        agent.hello()
        assert admin.delete(f"/v1/deployments/{dep['id']}").status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            agent.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_other_deployments_are_not_disturbed(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    _, first_token = _onboard(admin)
    second, second_token = _onboard(admin)
    with (
        AgentSocket(shared_manager.ws_url, first_token) as one,
        AgentSocket(shared_manager.ws_url, second_token) as two,
    ):
        one.hello()
        two.hello()
        release = _release_for(admin, second["id"])
        assert two.expect("desired_release")["release_id"] == release["id"]
        with pytest.raises(TimeoutError):
            one.recv(timeout=0.3)
