"""One agent process serves a deployment at a time: a second instance is refused (409
``AGENT_CONFLICT``) on the WebSocket and on the long-poll routes, shown on the deployment and
audited once; the same instance reconnecting is not a conflict, and the deployment is free again
the moment its WebSocket closes."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from support.agent import AgentSocket
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

HEADER = "Alien-Agent-Instance"


def _instance() -> str:
    return f"ins_{secrets.token_hex(12)}"


def _onboard(admin: ApiClient) -> tuple[dict[str, Any], str]:
    group = admin.create_group(unique("grp"))["name"]
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    return onboarded["deployment"], onboarded["token"]


def _refusal(manager: ManagerProcess, token: str, instance: str | None) -> dict[str, Any]:
    """Open the agent WebSocket as ``instance``; it must be refused: the error body."""
    with pytest.raises(InvalidStatus) as refused:
        AgentSocket(manager.ws_url, token, instance=instance)
    response = refused.value.response
    assert response.status_code == 409, response.body
    return json.loads(response.body)["error"]


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _denials(admin: ApiClient, dep_id: str) -> list[dict[str, Any]]:
    page = admin.get("/v1/audit", params={"deployment": dep_id, "action": "access.denied"})
    return [r for r in page.json()["items"] if r["details"]["code"] == "AGENT_CONFLICT"]


def test_a_second_instance_is_refused_while_the_first_is_connected(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    first, second = _instance(), _instance()
    with AgentSocket(shared_manager.ws_url, token, instance=first) as agent:
        agent.hello()
        for _ in range(3):
            error = _refusal(shared_manager, token, second)
            assert error["code"] == "AGENT_CONFLICT" and error["field"] == "agent"
            assert error["details"]["holder"]["instance"] == first
            assert error["details"]["refused"] == {"instance": second, "peer": "127.0.0.1"}
            assert first in error["message"] and "127.0.0.1" in error["message"]
        # an agent sending no instance id is another agent too
        assert _refusal(shared_manager, token, None)["code"] == "AGENT_CONFLICT"

        described = admin.deployment(dep["id"])
        assert described["connected"]
        agent_seen = described["agent"]
        assert (agent_seen["instance"], agent_seen["peer"]) == (first, "127.0.0.1")
        assert agent_seen["transport"] == "websocket" and agent_seen["since"]
        conflict = described["agent_conflict"]
        assert conflict["instance"] is None and conflict["attempts"] == 1  # the latest one
        assert conflict["holder_instance"] == first and conflict["peer"] == "127.0.0.1"

        audited = _denials(admin, dep["id"])
        assert sorted(r["target"] or "" for r in audited) == sorted(["", second])  # once each
        assert all(r["details"]["attempted"] == "agent.connect" for r in audited)
        agent.report(detail={"still": "here"})  # the holder is untouched
    # once the manager saw the first one go, the second is let in
    _wait_until(lambda: not admin.deployment(dep["id"])["connected"])
    with AgentSocket(shared_manager.ws_url, token, instance=second) as agent:
        assert agent.hello()["deployment_id"] == dep["id"]
        # the past refusal is still shown (for ten minutes), naming who held the deployment then
        assert admin.deployment(dep["id"])["agent_conflict"]["holder_instance"] == first
        # the first one is now the other agent: refused, and audited as a new instance
        assert _refusal(shared_manager, token, first)["details"]["holder"]["instance"] == second
    assert first in {r["target"] for r in _denials(admin, dep["id"])}


def test_the_same_instance_may_reconnect_while_its_old_socket_lingers(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    _, token = _onboard(admin)
    instance = _instance()
    with AgentSocket(shared_manager.ws_url, token, instance=instance) as old:
        old.hello()
        with AgentSocket(shared_manager.ws_url, token, instance=instance) as new:
            new.hello()
        old.report(detail={"old": True})  # still served


def test_long_polling_holds_the_deployment_too(
    shared_manager: ManagerProcess, admin: ApiClient
) -> None:
    dep, token = _onboard(admin)
    first, second = _instance(), _instance()
    agent = admin.with_token(token)
    parked = threading.Event()

    def poll() -> None:
        parked.set()
        agent.get("/v1/agent/next", params={"wait": 3}, headers={HEADER: first})

    thread = threading.Thread(target=poll)
    thread.start()
    parked.wait()
    try:
        hello = {"v": 1, "type": "hello", "agent_version": "test/1"}
        _wait_until(lambda: admin.deployment(dep["id"])["connected"])  # the poll is in flight
        holder = admin.deployment(dep["id"])["agent"]
        assert holder["instance"] == first and holder["transport"] == "poll"
        refused = agent.post("/v1/agent/status", json=hello, headers={HEADER: second})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "AGENT_CONFLICT"
        leased = agent.post("/v1/agent/commands/lease?wait=0", headers={HEADER: second})
        assert leased.status_code == 409
        assert _refusal(shared_manager, token, second)["code"] == "AGENT_CONFLICT"
        # the holder itself goes on
        assert (
            agent.post("/v1/agent/status", json=hello, headers={HEADER: first}).status_code == 200
        )
    finally:
        thread.join()
    # between two polls the holder keeps the deployment (for POLL_GAP seconds)
    again = agent.get("/v1/agent/next", params={"wait": 0}, headers={HEADER: second})
    assert again.status_code == 409


def test_a_malformed_instance_id_is_refused_naming_the_header(admin: ApiClient) -> None:
    _, token = _onboard(admin)
    response = admin.with_token(token).get(
        "/v1/agent/next", params={"wait": 0}, headers={HEADER: "ins_not-hex"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == HEADER
