"""``alien debug`` on a deployment whose agent reaches the manager through a proxy that refuses
WebSockets (``tests/agent/no_websocket_proxy.py``), so it falls back to HTTPS long-polling on
its own: ``tunnel_open`` comes in a poll's answer and the
agent's leg of the tunnel is made of plain requests (``alien.manager.debug_http_leg``). The
same real ``aws`` and ``curl`` commands work as through a WebSocket agent, and the leg's
requests are refused to anyone but the agent that opened it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dbg_world import AWS, World, s3_round_trip
from debug_moto import ACCOUNT, ROLE_NAME, MotoServer
from no_websocket_proxy import NoWebSocketProxy
from pull_world import PullDeployment, debug_config, make_world, start_agent
from targets import HELLO, Targets

from support.manager import ManagerProcess
from support.names import unique


@pytest.fixture(scope="module")
def polling(
    pull_manager: ManagerProcess,
    moto: MotoServer,
    targets: Targets,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PullDeployment]:
    config = debug_config(moto, [targets.http])
    proxy = NoWebSocketProxy(int(pull_manager.url.rsplit(":", 1)[1])).start()
    found = start_agent(
        pull_manager,
        moto,
        tmp_path_factory.mktemp("poll"),
        config,
        transport="auto",
        manager_url=proxy.url,
    )
    assert proxy.refused >= 1  # the WebSocket was tried and refused
    yield found
    found.agent.stop()
    proxy.close()


@pytest.fixture
def world(pull_manager: ManagerProcess, polling: PullDeployment, tmp_path: Path) -> Iterator[World]:
    w = make_world(pull_manager, polling, tmp_path)
    yield w
    w.close()


def test_caller_identity_through_a_polling_agent(world: World, polling: PullDeployment) -> None:
    result = world.debug(AWS, "sts", "get-caller-identity", "--query", "Arn", "--output", "text")
    assert result.returncode == 0, result.stderr
    session = world.latest_session()
    arn = result.stdout.strip()
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/alien-debug-{session['id']}"
    assert session["state"] == "closed" and session["exit_code"] == 0
    [request] = world.requests(session["id"])
    assert request["target"] == "sts:GetCallerIdentity" and request["outcome"] == "succeeded"
    assert "HTTP leg ended" in polling.agent.log()


def test_s3_up_and_down_through_a_polling_agent(world: World, tmp_path: Path) -> None:
    s3_round_trip(world, tmp_path, size_mib=8, bucket=unique("poll"))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_egress_through_a_polling_agent(world: World, targets: Targets) -> None:
    allowed = world.debug("curl", "-sS", "--fail-with-body", targets.http.url("/hello"))
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.encode() == HELLO
    refused = world.debug("curl", "-sS", "--fail-with-body", targets.outside.url("/hello"))
    assert refused.returncode != 0


def test_the_legs_requests_are_the_opening_agents_alone(
    world: World, polling: PullDeployment, deployment: PullDeployment
) -> None:
    """Opening needs the one-time credential; every leg route answers 404 for a leg id that
    is not the caller's (another deployment's token, or a made-up id) or for none at all."""
    session_path = f"/v1/agent/debug-tunnels/dbg_{'a' * 26}/http"
    with httpx.Client(base_url=world.manager.url, timeout=10) as http:
        own = {"Authorization": f"Bearer {_deployment_token(polling)}"}
        opened = http.post(session_path, headers=own)
        assert opened.status_code == 401, opened.text
        assert opened.json()["error"]["field"] == "credential"
        other = {"Authorization": f"Bearer {_deployment_token(deployment)}"}
        for method, tail, params in (
            ("POST", "/up", {"seq": 0}),
            ("GET", "/down", {"ack": 0, "wait": 0}),
            ("DELETE", "", {}),
        ):
            for headers in (own, other):
                answer = http.request(
                    method,
                    f"{session_path}{tail}",
                    headers={**headers, "alien-leg": "made-up"},
                    params=params,
                )
                assert answer.status_code == 404, (method, tail, answer.text)
                assert answer.json()["error"]["code"] == "NOT_FOUND"
            unnamed = http.request(method, f"{session_path}{tail}", headers=own, params=params)
            assert unnamed.status_code == 422, unnamed.text
        anonymous = http.get(f"{session_path}/down", params={"ack": 0})
        assert anonymous.status_code == 401


def _deployment_token(deployment: PullDeployment) -> str:
    """The agent's own deployment token (``alien-deploy`` keeps it in its state dir)."""
    return (deployment.agent.state_dir / "token").read_text().strip()
