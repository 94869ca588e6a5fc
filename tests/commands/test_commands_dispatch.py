"""Dispatch: over the agent's WebSocket at once, by long-poll lease without one, and answers by
WebSocket, by ``POST /v1/agent/status`` and by the signed ``response_url`` — real manager."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
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

PUSH_LIMIT = 0.5  # seconds from the create's answer to the agent holding the delivery


def test_created_command_is_pushed_at_once_and_the_response_ends_it(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    response = create_command(admin, deployment, params={"start_date": "2025-01-01"})
    assert response.status_code == 201, response.text
    created = response.json()
    answered = time.monotonic()
    assert created["state"] == "dispatched" and created["target"] == "api"

    offer = agent.command()
    assert time.monotonic() - answered < PUSH_LIMIT
    envelope = offer["envelope"]
    assert envelope["id"] == created["id"] and envelope["command"] == "echo"
    assert envelope["params"] == {"start_date": "2025-01-01"} and envelope["params_ref"] is None
    assert envelope["attempt"] == 1 and envelope["deployment_id"] == deployment.id
    assert offer["target"] == "api"

    receipt = agent.respond(offer, {"rows": 3})
    assert receipt["ok"] is True and receipt["state"] == "succeeded"
    done = admin.get(f"/v1/commands/{created['id']}", params={"wait": 5}).json()
    assert done["state"] == "succeeded" and done["result"] == {"rows": 3}
    assert done["error"] is None and done["ended_at"] is not None


def test_create_and_wait_in_one_request(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    agent.serve(lambda offer: {"ok": True, "result": offer["envelope"]["params"]})
    response = create_command(admin, deployment, params={"n": 1}, wait=10)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "succeeded" and response.json()["result"] == {"n": 1}


def test_handler_failure_ends_the_command_failed_with_its_error(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment, "fail").json()
    offer = agent.command()
    error = {"code": "HANDLER_ERROR", "message": "ValueError: bad date", "details": {}}
    receipt = agent.respond(offer, ok=False, result=None, error=error)
    assert receipt["ok"] is True and receipt["state"] == "failed"
    done = admin.get(f"/v1/commands/{created['id']}").json()
    assert done["state"] == "failed" and done["error"]["code"] == "HANDLER_ERROR"


def test_wait_returns_as_soon_as_the_command_ends(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment).json()
    offer = agent.command()
    timed = admin.get(f"/v1/commands/{created['id']}", params={"wait": 0.2}).json()
    assert timed["state"] == "dispatched"  # the wait ran out first
    agent.send_response(offer, ok=True, result=1)
    started = time.monotonic()
    done = admin.get(f"/v1/commands/{created['id']}", params={"wait": 10}).json()
    assert done["state"] == "succeeded" and time.monotonic() - started < 5


def test_ack_and_renew_extend_the_lease(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    created = create_command(admin, deployment, "slow").json()
    offer = agent.command()
    acked = agent.ack(offer)
    assert acked["ok"] is True and acked["state"] == "leased"
    renewed = agent.renew(offer)
    assert renewed["ok"] is True and renewed["lease_expires_at"] >= acked["lease_expires_at"]
    assert agent.ack(offer)["ok"] is True  # a repeated ack of the held lease is harmless
    assert admin.get(f"/v1/commands/{created['id']}").json()["state"] == "leased"
    assert agent.respond(offer, "done")["state"] == "succeeded"


def test_reconnecting_agent_is_sent_what_it_holds_and_what_waits(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment
) -> None:
    waiting = create_command(admin, deployment).json()
    assert waiting["state"] == "pending"  # no agent takes commands yet
    with CommandAgent(commands_manager.ws_url, deployment.token) as first:
        offer = first.command()
        assert offer["envelope"]["id"] == waiting["id"]
    wait_disconnected(admin, deployment)
    with CommandAgent(commands_manager.ws_url, deployment.token) as second:
        again = second.command()
        assert again["envelope"]["lease_id"] == offer["envelope"]["lease_id"]  # same lease
        assert second.respond(again, "ok")["state"] == "succeeded"


def test_agent_without_the_capability_gets_no_commands(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment
) -> None:
    with CommandAgent(commands_manager.ws_url, deployment.token, capabilities=()):
        created = create_command(admin, deployment).json()
        assert created["state"] == "pending"


def test_long_poll_lease_without_a_websocket(admin: ApiClient, deployment: Deployment) -> None:
    agent = admin.with_token(deployment.token)
    empty = agent.post("/v1/agent/commands/lease", params={"wait": 0})
    assert empty.status_code == 200 and empty.json() == {"messages": []}

    created = create_command(admin, deployment, params={"a": 1}).json()
    assert created["state"] == "pending"
    polled = agent.post("/v1/agent/commands/lease", params={"wait": 5}).json()["messages"]
    assert [m["envelope"]["id"] for m in polled] == [created["id"]]
    offer = polled[0]
    assert admin.get(f"/v1/commands/{created['id']}").json()["state"] == "leased"

    renew = {"v": 1, "type": "command_renew", "command_id": created["id"]}
    renew["lease_id"] = offer["envelope"]["lease_id"]
    receipt = agent.post("/v1/agent/status", json=renew).json()["messages"][0]
    assert receipt["type"] == "command_receipt" and receipt["ok"] is True

    response = {"command_id": created["id"], "lease_id": offer["envelope"]["lease_id"]}
    message = {"v": 1, "type": "command_response", "response": {**response, "ok": True}}
    receipt = agent.post("/v1/agent/status", json=message).json()["messages"][0]
    assert receipt["ok"] is True and receipt["state"] == "succeeded"
    agent.close()


def test_long_poll_wakes_when_a_command_is_created(
    admin: ApiClient, deployment: Deployment
) -> None:
    agent = admin.with_token(deployment.token)
    creator = threading.Timer(0.3, create_command, args=(admin, deployment))
    creator.start()
    started = time.monotonic()
    polled = agent.post("/v1/agent/commands/lease", params={"wait": 20}).json()["messages"]
    elapsed = time.monotonic() - started
    creator.join()
    assert len(polled) == 1 and polled[0]["type"] == "command"
    assert elapsed < 5  # woken by the create, not by the 20 s timeout
    agent.close()


def lease(
    agent: ApiClient, wait: float, *held: dict[str, str], most: int = 16
) -> list[dict[str, Any]]:
    """One long-poll lease request listing the ``held`` leases (``offer["envelope"]``s)."""
    body = {"held": [{"command_id": e["id"], "lease_id": e["lease_id"]} for e in held]}
    params = {"wait": wait, "max": most}
    answer = agent.post("/v1/agent/commands/lease", params=params, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]


def test_a_long_polling_agent_is_told_of_a_cancel_by_its_open_lease_request(
    admin: ApiClient, deployment: Deployment
) -> None:
    """No WebSocket to push the cancel on: the held lease request answers with it at once,
    rather than the agent learning it from a renewal a third of the lease later."""
    agent = admin.with_token(deployment.token)
    created = create_command(admin, deployment).json()
    [offer] = lease(agent, 5)
    envelope = offer["envelope"]
    assert lease(agent, 0, envelope) == []  # still its lease: nothing to say
    canceller = threading.Timer(0.3, admin.post, args=(f"/v1/commands/{created['id']}/cancel",))
    canceller.start()
    started = time.monotonic()
    polled = lease(agent, 20, envelope)
    elapsed = time.monotonic() - started
    canceller.join()
    assert elapsed < 5  # woken by the cancel, not by the 20 s timeout
    assert [(m["type"], m["command_id"], m["lease_id"], m["code"]) for m in polled] == [
        ("command_cancel", created["id"], envelope["lease_id"], "COMMAND_CANCELLED")
    ]
    assert lease(agent, 0) == []  # a lease request that lists nothing hears of nothing
    agent.close()


def test_an_agent_with_every_slot_busy_asks_for_cancels_only(
    admin: ApiClient, deployment: Deployment
) -> None:
    """``max=0``: the request hands out no command, however many wait, and is still woken at
    once by a cancel of a lease it holds."""
    agent = admin.with_token(deployment.token)
    running = create_command(admin, deployment).json()
    [offer] = lease(agent, 5)
    waiting = create_command(admin, deployment).json()
    started = time.monotonic()
    assert lease(agent, 1, offer["envelope"], most=0) == []  # its wait ran out, nothing leased
    assert time.monotonic() - started >= 0.9
    assert admin.get(f"/v1/commands/{waiting['id']}").json()["state"] == "pending"
    canceller = threading.Timer(0.3, admin.post, args=(f"/v1/commands/{running['id']}/cancel",))
    canceller.start()
    started = time.monotonic()
    polled = lease(agent, 20, offer["envelope"], most=0)
    canceller.join()
    assert time.monotonic() - started < 5  # woken by the cancel
    assert [(m["type"], m["command_id"]) for m in polled] == [("command_cancel", running["id"])]
    refused = agent.post("/v1/agent/commands/lease", params={"wait": 0, "max": -1})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "max"
    agent.close()


def test_a_lease_that_ran_out_is_cancelled_before_its_command_is_offered_again(
    short_lease_manager: ManagerProcess,
) -> None:
    """Leases last 1 s here and this agent never renews: the open request is woken when the
    sweeper finds the lease gone, with the cancel first and then the command's next delivery."""
    with short_lease_manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        created = create_command(admin, deployment).json()
    agent = short_lease_manager.client(deployment.token)
    [offer] = lease(agent, 5)
    envelope = offer["envelope"]
    started = time.monotonic()
    polled = lease(agent, 20, envelope)
    while len(polled) == 1:  # told before the sweeper made the command pending again
        assert time.monotonic() - started < 10
        polled += lease(agent, 5)
    assert time.monotonic() - started < 10
    cancel, again = polled
    assert (cancel["type"], cancel["command_id"], cancel["code"]) == (
        "command_cancel",
        created["id"],
        "STALE_LEASE",
    )
    assert again["type"] == "command" and again["envelope"]["id"] == created["id"]
    assert again["envelope"]["lease_id"] != envelope["lease_id"]
    assert again["envelope"]["attempt"] == 2
    agent.close()


def test_lost_leases_are_worked_out_from_the_stored_commands_across_a_restart(
    own_manager: Callable[..., ManagerProcess],
) -> None:
    """The command is cancelled while no lease request is open, then the manager restarts:
    the agent's next request still hears of it (nothing was kept in the manager's memory)."""
    manager = own_manager()
    with manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        agent = admin.with_token(deployment.token)
        created = create_command(admin, deployment).json()
        [offer] = lease(agent, 5)
        assert admin.post(f"/v1/commands/{created['id']}/cancel").status_code == 200
        agent.close()
    manager.restart()
    with manager.client() as admin:
        agent = admin.with_token(deployment.token)
        started = time.monotonic()
        polled = lease(agent, 20, offer["envelope"])
        assert time.monotonic() - started < 5
        assert [(m["type"], m["command_id"], m["code"]) for m in polled] == [
            ("command_cancel", created["id"], "COMMAND_CANCELLED")
        ]
        agent.close()


def test_held_leases_of_another_deployment_or_malformed_are_refused(
    admin: ApiClient, deployment: Deployment
) -> None:
    other = running_deployment(admin, commands=KNOWN_COMMANDS)
    created = create_command(admin, other).json()
    [offer] = lease(admin.with_token(other.token), 5)
    agent = admin.with_token(deployment.token)
    # Another deployment's command: not this agent's, and nothing about it is told.
    [cancel] = lease(agent, 0, offer["envelope"])
    assert (cancel["command_id"], cancel["code"]) == (created["id"], "COMMAND_NOT_FOUND")
    assert cancel["message"] == "no such command for this deployment"
    bad = agent.post(
        "/v1/agent/commands/lease",
        params={"wait": 0},
        json={"held": [{"command_id": "../etc", "lease_id": offer["envelope"]["lease_id"]}]},
    )
    assert bad.status_code == 422 and "command_id" in bad.text
    too_many = [{"command_id": created["id"], "lease_id": offer["envelope"]["lease_id"]}] * 1001
    refused = agent.post("/v1/agent/commands/lease", params={"wait": 0}, json={"held": too_many})
    assert refused.status_code == 422 and "held" in refused.text
    agent.close()


def test_signed_response_url_answers_without_a_token(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    create_command(admin, deployment)
    offer = agent.command()
    envelope = offer["envelope"]
    body = {"command_id": envelope["id"], "lease_id": envelope["lease_id"], "ok": True, "result": 7}
    answer = httpx.post(envelope["response_url"], json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == "command_receipt" and answer.json()["state"] == "succeeded"
    assert admin.get(f"/v1/commands/{envelope['id']}").json()["result"] == 7
    # The URL is bound to its lease: posting another lease's response there is refused.
    other = {**body, "lease_id": "lse_0000000000000000000000000a"}
    assert httpx.post(envelope["response_url"], json=other, timeout=10).status_code == 422


def test_an_ack_never_takes_a_pending_command(short_lease_manager: ManagerProcess) -> None:
    """Neither a command whose lease ran out (the late worker acking its old lease must not
    revive it, nor then answer under it) nor a fresh one under a lease id the agent made up:
    only the manager hands a pending command out, under a lease of its own."""
    with short_lease_manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        created = create_command(admin, deployment).json()
        agent = short_lease_manager.client(deployment.token)
        [offer] = lease(agent, 5)
        envelope = offer["envelope"]
        deadline = time.monotonic() + 10
        while admin.get(f"/v1/commands/{created['id']}").json()["state"] != "pending":
            assert time.monotonic() < deadline
            time.sleep(0.1)

        def ack(command_id: str, lease_id: str) -> dict[str, Any]:
            message = {"v": 1, "type": "command_ack", "command_id": command_id}
            answer = agent.post("/v1/agent/status", json={**message, "lease_id": lease_id})
            assert answer.status_code == 200, answer.text
            [receipt] = answer.json()["messages"]
            return receipt

        stale = ack(created["id"], envelope["lease_id"])
        assert (stale["ok"], stale["code"]) == (False, "STALE_LEASE")
        late = httpx.post(
            envelope["response_url"],
            json={"command_id": created["id"], "lease_id": envelope["lease_id"], "ok": True},
        )
        assert late.json()["code"] == "STALE_LEASE", late.text

        fresh = create_command(admin, deployment).json()
        made_up = ack(fresh["id"], "lse_0123456789abcdefghjkmnpqrs")
        assert (made_up["ok"], made_up["code"]) == (False, "STALE_LEASE")
        for command in (created, fresh):
            assert admin.get(f"/v1/commands/{command['id']}").json()["state"] == "pending"
        agent.close()
