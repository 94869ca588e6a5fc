"""The pull-model world: a manager with no cloud identity at all, a real agent (``alien-deploy``)
holding the deployment's AWS identity and debug configuration, and services inside "the
customer's environment" that only the agent may reach on the engineer's behalf.

The moto, ``World`` and agent helpers of the push-model and agent suites are reused (their
directories are put on ``sys.path`` by this suite's conftest).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from agent_support import AgentProcess
from dbg_world import ALLOWED_SERVICES, REGION, World
from debug_moto import MotoServer
from targets import Target

from support.manager import ManagerProcess
from support.names import unique

READY_TIMEOUT = 30.0


def agent_aws_env(moto: MotoServer) -> dict[str, str]:
    """The agent's own AWS identity (boto3's default chain, from its environment): the IAM user
    that may assume the deployment's role. The manager never gets it."""
    return {
        "AWS_ACCESS_KEY_ID": moto.manager_key_id,
        "AWS_SECRET_ACCESS_KEY": moto.manager_secret,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def debug_config(moto: MotoServer, allowed: list[Target]) -> dict[str, object]:
    """The customer's ``debug.json``: AWS through the role, HTTP egress to ``allowed`` only."""
    return {
        "aws": {
            "region": REGION,
            "allowed_services": ALLOWED_SERVICES,
            "role_arn": moto.role_arn,
            "endpoint_url": moto.url,
        },
        "http": {"allow": [t.authority for t in allowed]},
    }


@dataclass
class PullDeployment:
    """The onboarded deployment and its running agent."""

    ref: str
    deployment_id: str
    agent: AgentProcess


def pull_manager_env() -> dict[str, str]:
    """A manager without any AWS identity: in the pull model every cloud call is the agent's."""
    blank = {k: "" for k in os.environ if k.startswith("AWS_")}
    return {**blank, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def start_agent(
    manager: ManagerProcess,
    moto: MotoServer,
    root: Path,
    config: dict[str, object],
    *,
    env: dict[str, str] | None = None,
    transport: str = "websocket",
    manager_url: str | None = None,
) -> PullDeployment:
    """Onboard a deployment with a real ``alien-deploy up`` whose state dir holds ``config``
    (``env``: variables added to its environment; ``transport``: its channel to the manager;
    ``manager_url``: how it reaches the manager, if not directly); returns once the agent is
    connected (and therefore offers debug tunnels)."""
    admin = manager.client()
    try:
        group, name = unique("pull"), unique("acme")
        admin.create_group(group)
        token = admin.create_group_token(group)
    finally:
        admin.close()
    state = root / "agent"
    state.mkdir(mode=0o700, parents=True)
    (state / "debug.json").write_text(json.dumps(config))
    url = manager_url or manager.url
    agent = AgentProcess(state, url, token=token, name=name, transport=transport)
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment = {**scrubbed, **agent_aws_env(moto), **(env or {})}
    with mock.patch.dict(os.environ, environment, clear=True):
        agent.start()  # the child's environment is copied now
    wait_for_log(agent, "connected to the manager")
    assert agent.deployment_id is not None
    return PullDeployment(f"{group}/{name}", agent.deployment_id, agent)


def wait_for_log(agent: AgentProcess, text: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll the agent's log for ``text`` (its stable stdout lines say nothing about this)."""
    deadline = time.monotonic() + timeout
    while text not in agent.log_path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"the agent never logged {text!r}:\n{agent.log()}")
        time.sleep(0.05)


def make_world(manager: ManagerProcess, deployment: PullDeployment, tmp_path: Path) -> World:
    """A debugger key and a private runtime dir for one test, on the shared deployment."""
    admin = manager.client()
    key = admin.post("/v1/api-keys", json={"name": "engineer", "role": "debugger"})
    assert key.status_code == 201, key.text
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    return World(
        manager=manager,
        admin=admin,
        debugger_key=key.json()["key"],
        ref=deployment.ref,
        deployment_id=deployment.deployment_id,
        runtime_dir=runtime,
    )
