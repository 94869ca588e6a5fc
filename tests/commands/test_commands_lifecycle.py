"""The lifecycle through the real manager: idempotency, deadlines, cancel, leases and retries,
stale and duplicate responses, and a restart in the middle of it all."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_double import (
    KNOWN_COMMANDS,
    CommandAgent,
    Deployment,
    create_command,
    running_deployment,
    wait_disconnected,
)

from support.api import ApiClient
from support.manager import ManagerProcess


def test_same_idempotency_key_and_request_returns_the_same_command(
    admin: ApiClient, deployment: Deployment
) -> None:
    first = create_command(admin, deployment, params={"x": 1}, idempotency_key="report-42")
    again = create_command(admin, deployment, params={"x": 1}, idempotency_key="report-42")
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]

    other = create_command(admin, deployment, params={"x": 2}, idempotency_key="report-42")
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and error["field"] == "idempotency_key"
    listed = admin.get("/v1/commands", params={"deployment": deployment.ref}).json()["items"]
    assert [c["id"] for c in listed] == [first.json()["id"]]  # created once


def test_deadline_expires_a_command_nobody_answers(
    admin: ApiClient, deployment: Deployment
) -> None:
    created = create_command(admin, deployment, timeout=0.5).json()
    started = time.monotonic()
    ended = admin.get(f"/v1/commands/{created['id']}", params={"wait": 10}).json()
    assert ended["state"] == "expired" and ended["error"]["code"] == "COMMAND_EXPIRED"
    assert time.monotonic() - started < 5  # the sweeper ended it, the wait woke at once


def test_cancel_ends_the_command_and_tells_the_agent(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment, "slow").json()
    offer = agent.command()
    agent.ack(offer)
    response = admin.post(f"/v1/commands/{created['id']}/cancel", json={"reason": "wrong day"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert response.json()["error"] == {
        "code": "COMMAND_CANCELLED",
        "message": "wrong day",
        "details": {},
    }
    stop = agent.next("command_cancel")
    assert stop["command_id"] == created["id"] and stop["code"] == "COMMAND_CANCELLED"
    assert stop["lease_id"] == offer["envelope"]["lease_id"]

    late = agent.respond(offer, "too late")
    assert late["ok"] is False and late["code"] == "COMMAND_CANCELLED"
    again = admin.post(f"/v1/commands/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "COMMAND_CANCELLED"


def test_cancel_of_a_finished_command_is_refused(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment).json()
    agent.respond(agent.command(), 1)
    refused = admin.post(f"/v1/commands/{created['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "COMMAND_FINISHED"
    missing = admin.post("/v1/commands/cmd_0000000000000000000000000a/cancel")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "COMMAND_NOT_FOUND"


def test_duplicate_and_stale_responses_are_refused_never_applied_twice(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment).json()
    offer = agent.command()
    assert agent.respond(offer, "first")["ok"] is True
    duplicate = agent.respond(offer, "second")
    assert duplicate["ok"] is True and duplicate["code"] == "DUPLICATE_RESPONSE"
    stale = dict(offer, envelope={**offer["envelope"], "lease_id": "lse_00000000000000000stale"})
    refused = agent.respond(stale, "third")
    assert refused["ok"] is False and refused["code"] == "COMMAND_FINISHED"
    stored = admin.get(f"/v1/commands/{created['id']}").json()
    assert stored["result"] == "first" and stored["state"] == "succeeded"


def test_response_for_another_deployments_command_is_not_found(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    other = running_deployment(admin, commands=KNOWN_COMMANDS)
    foreign = create_command(admin, other).json()
    envelope = {"id": foreign["id"], "lease_id": "lse_000000000000000000000000a"}
    receipt = agent.respond({"envelope": envelope}, "hijack")
    assert receipt["ok"] is False and receipt["code"] == "COMMAND_NOT_FOUND"
    assert admin.get(f"/v1/commands/{foreign['id']}").json()["state"] == "pending"


def test_lost_lease_offers_again_with_the_next_attempt_then_fails(
    short_lease_manager: ManagerProcess,
) -> None:
    manager = short_lease_manager
    with manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        with CommandAgent(manager.ws_url, deployment.token) as agent:
            created = create_command(admin, deployment, max_attempts=2, timeout=30).json()
            first = agent.command()
            assert first["envelope"]["attempt"] == 1 and first["envelope"]["max_attempts"] == 2
            # No answer: the lease runs out, the holder is told, the command is offered again.
            lost = agent.next("command_cancel", timeout=5)
            assert lost["code"] == "STALE_LEASE"
            assert lost["lease_id"] == first["envelope"]["lease_id"]
            second = agent.command(timeout=5)
            assert second["envelope"]["attempt"] == 2
            assert second["envelope"]["lease_id"] != first["envelope"]["lease_id"]
            late = agent.respond(first, "late")  # the first attempt's answer comes too late
            assert late["ok"] is False and late["code"] == "STALE_LEASE"
            # The last attempt's lease runs out too: the command fails.
            ended = admin.get(f"/v1/commands/{created['id']}", params={"wait": 10}).json()
            assert ended["state"] == "failed" and ended["error"]["code"] == "MAX_ATTEMPTS"
            assert ended["attempt"] == 2


def test_renewing_keeps_a_long_handler_past_its_first_lease(
    short_lease_manager: ManagerProcess,
) -> None:
    manager = short_lease_manager
    with manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        with CommandAgent(manager.ws_url, deployment.token) as agent:
            created = create_command(admin, deployment, "slow", max_attempts=1).json()
            offer = agent.command()
            assert agent.ack(offer)["ok"] is True
            started = time.monotonic()
            while time.monotonic() - started < 2.5:  # 2.5 leases long
                assert agent.renew(offer)["ok"] is True
                time.sleep(0.25)  # the handler "working"; renewing at a quarter of the lease
            assert agent.respond(offer, "finally")["state"] == "succeeded"
            assert admin.get(f"/v1/commands/{created['id']}").json()["attempt"] == 1


def test_restart_mid_flight_loses_nothing(own_manager: Callable[..., ManagerProcess]) -> None:
    """A command held by the agent, one waiting for it, and one whose deadline passes while
    the manager is down: after the restart each is exactly where it should be."""
    manager = own_manager()
    with manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        with CommandAgent(manager.ws_url, deployment.token) as agent:
            held = create_command(admin, deployment, params={"k": "held"}).json()
            held_offer = agent.command()
        wait_disconnected(admin, deployment)
        waiting = create_command(admin, deployment, params={"k": "waiting"}).json()
        expiring = create_command(admin, deployment, timeout=1).json()
        assert waiting["state"] == expiring["state"] == "pending"
    manager.stop()
    time.sleep(1.1)  # the third command's deadline passes while no manager runs
    manager.start()
    with manager.client() as admin, CommandAgent(manager.ws_url, deployment.token) as agent:
        offers = {o["envelope"]["id"]: o for o in (agent.command(), agent.command())}
        assert set(offers) == {held["id"], waiting["id"]}
        # The held command comes back under the lease the agent already had.
        assert offers[held["id"]]["envelope"]["lease_id"] == held_offer["envelope"]["lease_id"]
        assert offers[waiting["id"]]["envelope"]["params"] == {"k": "waiting"}
        for offer in offers.values():
            assert agent.respond(offer, offer["envelope"]["params"])["ok"] is True
        for created in (held, waiting):
            done = admin.get(f"/v1/commands/{created['id']}", params={"wait": 5}).json()
            assert done["state"] == "succeeded" and done["result"] == created["params"]
        ended = admin.get(f"/v1/commands/{expiring['id']}", params={"wait": 5}).json()
        assert ended["state"] == "expired" and ended["error"]["code"] == "COMMAND_EXPIRED"
