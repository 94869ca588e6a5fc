"""The agent channel's HTTP fallback (long-poll + status posts) and the deployment wait route."""

from __future__ import annotations

import threading
import time
from typing import Any

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

WAKE_LIMIT = 0.5  # seconds from the change to the long-poll's answer


def _onboard(admin: ApiClient) -> tuple[dict[str, Any], ApiClient]:
    group = admin.create_group(unique("grp"))["name"]
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    return onboarded["deployment"], admin.with_token(onboarded["token"])


def _release_for(admin: ApiClient, dep_id: str) -> str:
    return admin.create_release({"type": "deployments", "deployments": [dep_id]})["id"]


def _later(delay: float, action: Any) -> tuple[threading.Thread, list[float]]:
    """Run ``action`` on a thread after ``delay``; the list receives the monotonic time it ran."""
    done: list[float] = []

    def run() -> None:
        time.sleep(delay)  # lets the long-poll get parked first; correctness does not depend on it
        action()
        done.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def _status(agent: ApiClient, message: dict[str, Any]) -> Any:
    return agent.post("/v1/agent/status", json={"v": 1, **message})


def test_next_answers_at_once_when_work_is_waiting(admin: ApiClient) -> None:
    dep, agent = _onboard(admin)
    release = _release_for(admin, dep["id"])
    started = time.monotonic()
    body = agent.get("/v1/agent/next", params={"wait": 20}).json()
    assert time.monotonic() - started < 5
    assert [m["type"] for m in body["messages"]] == ["desired_release"]
    assert body["messages"][0]["release_id"] == release
    # the agent already has it: nothing to say, the poll times out empty
    quiet = agent.get("/v1/agent/next", params={"wait": 0.2, "known": release}).json()
    assert quiet == {"messages": []}
    assert admin.deployment(dep["id"])["last_heartbeat_at"] is not None


def test_next_wakes_up_when_a_release_arrives(admin: ApiClient) -> None:
    dep, agent = _onboard(admin)
    holder: list[str] = []
    thread, done = _later(0.3, lambda: holder.append(_release_for(admin, dep["id"])))
    body = agent.get("/v1/agent/next", params={"wait": 20}).json()
    answered = time.monotonic()
    thread.join()
    assert body["messages"][0]["release_id"] == holder[0]
    assert answered - done[0] < WAKE_LIMIT


def test_status_over_http(admin: ApiClient) -> None:
    dep, agent = _onboard(admin)
    welcome = _status(agent, {"type": "hello", "agent_version": "http-agent/1"}).json()
    assert welcome["messages"][0]["type"] == "welcome"
    assert welcome["messages"][0]["deployment_id"] == dep["id"]
    assert _status(agent, {"type": "heartbeat"}).json() == {"messages": []}

    illegal = _status(agent, {"type": "status", "event": {"type": "provisioned"}})
    assert illegal.status_code == 409
    error = illegal.json()["error"]
    assert error["code"] == "ILLEGAL_TRANSITION"
    assert error["details"]["status"]["state"] == "pending"

    for message, code, field in [
        ({"type": "warp"}, "UNKNOWN_MESSAGE_TYPE", "type"),
        ({"type": "hello"}, "VALIDATION_ERROR", "agent_version"),
        ({"type": "status", "detail": "nope"}, "VALIDATION_ERROR", "detail"),
    ]:
        refused = _status(agent, message)
        assert refused.status_code == 422, refused.text
        assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == (code, field)

    assert _status(agent, {"type": "status", "event": {"type": "provision_started"}}).is_success
    assert admin.deployment(dep["id"])["state"] == "provisioning"


def test_wait_returns_when_the_state_is_reached(admin: ApiClient) -> None:
    dep, agent = _onboard(admin)
    url = f"/v1/deployments/{dep['id']}/wait"
    assert admin.get(url, params={"state": "pending", "timeout": 0}).json()["outcome"] == "matched"
    thread, done = _later(
        0.3, lambda: _status(agent, {"type": "status", "event": {"type": "provision_started"}})
    )
    result = admin.get(url, params={"state": ["provisioned", "provisioning"], "timeout": 20}).json()
    answered = time.monotonic()
    thread.join()
    assert result["outcome"] == "matched"
    assert result["deployment"]["state"] == "provisioning"
    assert answered - done[0] < WAKE_LIMIT


def test_wait_times_out_with_the_current_deployment(admin: ApiClient) -> None:
    dep, _ = _onboard(admin)
    started = time.monotonic()
    result = admin.get(
        f"/v1/deployments/{dep['id']}/wait", params={"state": "running", "timeout": 0.3}
    ).json()
    assert 0.3 <= time.monotonic() - started < 5
    assert result["outcome"] == "timeout"
    assert result["deployment"]["state"] == "pending"


def test_wait_input_errors(admin: ApiClient, shared_manager: ManagerProcess) -> None:
    dep, agent = _onboard(admin)
    url = f"/v1/deployments/{dep['id']}/wait"
    cases = [
        ({}, "state"),
        ({"state": "sleeping"}, "state"),
        ({"state": "running", "timeout": -1}, "timeout"),
        ({"state": "running", "timeout": 3600}, "timeout"),
    ]
    for params, field in cases:
        response = admin.get(url, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    too_long = agent.get("/v1/agent/next", params={"wait": 3600})
    assert too_long.status_code == 422 and too_long.json()["error"]["field"] == "wait"
    missing = admin.get("/v1/deployments/no-such-dep/wait", params={"state": "running"})
    assert missing.status_code == 404


def _wait_for_release(client: ApiClient, ref: str, release: str) -> tuple[int, dict[str, Any]]:
    """A long wait for ``release``: a refusal must come at once, not after the 20 s."""
    started = time.monotonic()
    response = client.get(f"/v1/deployments/{ref}/wait", params={"release": release, "timeout": 20})
    assert time.monotonic() - started < 5, response.text
    body = response.json()
    if "error" in body:
        error = body["error"]
        return response.status_code, {**error, "message": error["message"].replace(release, "<r>")}
    return response.status_code, body


def test_waiting_for_a_release_that_can_never_arrive_is_refused_at_once(admin: ApiClient) -> None:
    """A release that does not exist is a 404 naming ``release``; one that exists but is not
    assigned to the deployment (another group's; its own group's, but superseded before it
    onboarded) is a 409: neither can ever become its current release."""
    group, other = (admin.create_group(unique(g))["name"] for g in ("grp", "other"))
    superseded = admin.create_release({"type": "group", "group": group})["id"]
    newest = admin.create_release({"type": "group", "group": group})["id"]
    dep = admin.onboard(admin.create_group_token(group), unique("dep"))["deployment"]
    admin.onboard(admin.create_group_token(other), unique("dep"))
    elsewhere = admin.create_release({"type": "group", "group": other})["id"]
    later = admin.create_release({"type": "group", "group": group})["id"]

    code, nothing = _wait_for_release(admin, dep["id"], "rel_nosuch")
    assert code == 404 and nothing["code"] == "NOT_FOUND" and nothing["field"] == "release"
    for release in (elsewhere, superseded):
        code, refused = _wait_for_release(admin, dep["id"], release)
        assert code == 409 and refused["field"] == "release", refused
        assert "not assigned to this deployment" in refused["message"]
    # What the deployment was given when it onboarded, or later, may still arrive.
    for release in (newest, later):
        response = admin.get(
            f"/v1/deployments/{dep['id']}/wait", params={"release": release, "timeout": 0}
        )
        assert response.status_code == 200 and response.json()["outcome"] == "timeout"


def test_a_refused_release_wait_does_not_tell_of_releases_the_caller_may_not_see(
    admin: ApiClient,
) -> None:
    """A key scoped to one group, and a deployment's token, get for another group's release
    (or another deployment's) exactly the 404 of a release that does not exist."""
    group, other = (admin.create_group(unique(g))["name"] for g in ("grp", "other"))
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    dep = onboarded["deployment"]
    sibling = admin.onboard(admin.create_group_token(group), unique("dep"))
    admin.onboard(admin.create_group_token(other), unique("dep"))
    elsewhere = admin.create_release({"type": "group", "group": other})["id"]
    siblings = admin.create_release(
        {"type": "deployments", "deployments": [sibling["deployment"]["id"]]}
    )["id"]
    created = admin.post("/v1/api-keys", json={"name": "v", "role": "viewer", "groups": [group]})
    assert created.status_code == 201, created.text
    with (
        admin.with_token(created.json()["key"]) as scoped,
        admin.with_token(onboarded["token"]) as own,
    ):
        for client in (scoped, own):
            nothing = _wait_for_release(client, dep["id"], "rel_nosuch")
            assert nothing[0] == 404 and nothing[1]["field"] == "release"
            assert _wait_for_release(client, dep["id"], elsewhere) == nothing
        # Its group's release, assigned to a sibling only: the scoped key may see it.
        code, refused = _wait_for_release(scoped, dep["id"], siblings)
        assert code == 409 and refused["field"] == "release", refused
        assert _wait_for_release(own, dep["id"], siblings) == nothing


def test_torn_down_deployments_take_no_releases_and_free_their_name(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(group)
    name = unique("dep")
    onboarded = admin.onboard(token, name)
    dep_id = onboarded["deployment"]["id"]
    agent = admin.with_token(onboarded["token"])
    for event in ({"type": "delete_requested"}, {"type": "deleted"}):
        assert _status(agent, {"type": "status", "event": event}).is_success
    assert admin.deployment(dep_id)["state"] == "deleted"

    named = admin.post(
        "/v1/releases",
        json={
            "manifest": {"manifest_version": 1, "name": "x", "resources": []},
            "package_digest": admin.upload(b"pkg")["digest"],
            "targets": {"type": "deployments", "deployments": [dep_id]},
        },
    )
    assert named.status_code == 409, named.text
    assert named.json()["error"]["field"] == "targets.deployments.0"
    assert admin.create_release({"type": "group", "group": group})["deployments"] == []

    again = admin.onboard(token, name)["deployment"]
    assert again["id"] != dep_id and again["state"] == "pending"
    assert admin.get(f"/v1/deployments/{dep_id}").status_code == 404
