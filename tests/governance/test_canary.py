"""Canaries: secrets placed where a realistic flow touches them never come out anywhere.

Three canaries, each a unique random string:

* a value in the deployment's vault, read by a remote command that logs it and then fails with
  it in the exception message;
* the value of a secret-named environment variable of the function (``PAYMENT_API_KEY``), used
  the same way by another command;
* tokens: a debugger API key, and the debug session it opens; the key goes in the headers of a
  request proxied through the session's tunnel, then keeps being presented after it is revoked.

The flow is the real one: a manager process, an ``alien-deploy`` agent process running the
release, the function's runtime process, commands over the agent channel, a push-model debug
session tunnelled through the manager to (signature-checking) moto. Then everything the tests
can collect is searched: the manager's and the agent's logs, the function's log, the whole audit
trail, every API error, and what the manager reports (deployment status detail sent by the
agent, the commands, the debug session and its proxied requests). The only places a canary may
be are the ones it was put or shown on purpose: the vault, the release manifest, and the one
response that created a token.

Each canary must also have *reached* the places it would leak to — the command's error and the
function's log say ``[REDACTED]`` where the secret was — so the test cannot pass by the flow
having missed the secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.config
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_support import AgentProcess
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dbg_world import REGION, manager_env, register_aws
from debug_moto import MotoServer

from alien.bindings.local.vault import LocalVault
from alien.client import ClientConfig, ManagerClient
from alien.client.aio import AsyncManagerClient
from alien.client.publish import publish
from alien.debug import api as debug_api
from alien.debug.session import DebugSession
from alien.manager.server import log_config
from alien.platforms.local.area import Area
from alien.protocol.http_exchange import RequestHead, iterate_once
from alien.redaction import REDACTED, add_secret
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

APP = """\
import logging
import os

import alien

log = logging.getLogger("canary-app")


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@alien.command("use-vault")
def use_vault() -> dict:
    password = alien.vault("secrets").get_secret("db-password")
    log.warning("connecting to the database with password %s", password)
    raise RuntimeError(f"the database refused the password {password}")


@alien.command("use-env")
def use_env() -> dict:
    key = os.environ["PAYMENT_API_KEY"]
    log.warning("calling the payment API with key %s", key)
    raise RuntimeError(f"the payment API refused key {key}")
"""

STACK = """\
import alien

secrets = alien.Vault("secrets")
api = (
    alien.Function("api")
    .code(src="api", entrypoint="app:app")
    .link(secrets)
    .commands_enabled()
    .env({{"PAYMENT_API_KEY": {env_canary!r}}})
)
stack = alien.Stack("canary").add(api, "live").add(secrets, "frozen")
"""


@dataclass
class Evidence:
    """Everything collected from the flow, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        self.texts[where] = self.texts.get(where, "") + text + "\n"

    def response(self, where: str, response: httpx.Response) -> Any:
        """Keep an answer (JSON or text) and return its JSON (or ``None``)."""
        self.add(where, response.text)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.json() if is_json and response.content else None

    def leaks(self, canaries: dict[str, str]) -> list[str]:
        return [
            f"{name} canary in {where}"
            for name, canary in canaries.items()
            for where, text in self.texts.items()
            if canary in text
        ]


@dataclass
class Flow:
    manager: ManagerProcess
    admin: ApiClient
    agent: AgentProcess
    deployment_id: str
    evidence: Evidence


def _canary(kind: str) -> str:
    return f"canary-{kind}-{secrets.token_hex(12)}"


@pytest.fixture
def flow(
    tmp_path: Path,
    moto: MotoServer,
    assert_clean_log: Callable[[ManagerProcess], None],
) -> Iterator[Flow]:
    manager = ManagerProcess(tmp_path / "manager", extra_env=manager_env(moto)).start()
    admin = manager.client()
    group = unique("canary")
    admin.create_group(group)
    agent = AgentProcess(
        tmp_path / "agent",
        manager.url,
        token=admin.create_group_token(group),
        name=unique("shop"),
    )
    try:
        agent.start()
        assert agent.deployment_id is not None
        yield Flow(manager, admin, agent, agent.deployment_id, Evidence())
    finally:
        agent.terminate()
        agent.stop()
        admin.close()
        manager.stop()
    assert_clean_log(manager)


def _release(flow: Flow, app_dir: Path, env_canary: str) -> None:
    (app_dir / "api").mkdir(parents=True)
    (app_dir / "api" / "app.py").write_text(APP)
    (app_dir / "alien_stack.py").write_text(STACK.format(env_canary=env_canary))
    config = ClientConfig(base_url=flow.manager.url, token=flow.manager.admin_key)
    with ManagerClient(config) as client:
        targets = {"type": "deployments", "deployments": [flow.deployment_id]}
        release = publish(client, app_dir, targets).release
    flow.agent.wait_running(release.id)
    # The agent says so as soon as it runs; the manager knows once its report arrived.
    waited = flow.admin.get(
        f"/v1/deployments/{flow.deployment_id}/wait",
        params={"release": release.id, "timeout": 30},
    )
    assert waited.json()["outcome"] == "matched", waited.text


def _run_failing_command(flow: Flow, command: str) -> dict[str, Any]:
    body = {"deployment": flow.deployment_id, "command": command}
    response = flow.admin.post("/v1/commands", params={"wait": 30}, json=body)
    created = flow.evidence.response(f"command {command}", response)
    assert response.status_code == 201, response.text
    assert created["state"] == "failed", created
    again = flow.admin.get(f"/v1/commands/{created['id']}")
    flow.evidence.response(f"command {command}", again)
    return created  # type: ignore[no-any-return]


async def _debug_through_the_tunnel(
    flow: Flow, ref: str, key: str, evidence: Evidence
) -> tuple[str, str]:
    """Open a session with ``key``, send one STS call through its tunnel with the key in a
    header too, close it; returns the session's id and token."""
    config = ClientConfig.resolve(flow.manager.url, key, env={})
    async with AsyncManagerClient(config) as client:
        opened = await client.call(debug_api.open_session(ref, "canary check", None))
        session = DebugSession(client, opened)  # the token was shown in that answer, only
        await session.connect()
        request = AWSRequest(
            method="POST",
            url="http://127.0.0.1:1/",
            data=b"Action=GetCallerIdentity&Version=2011-06-15",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        SigV4Auth(Credentials("ASIAALIENTEST0000000", "session-only"), "sts", REGION).add_auth(
            request
        )
        head = (
            RequestHead.create("POST", "/", list(request.headers.items()))
            .with_header("x-amz-content-sha256", hashlib.sha256(request.body).hexdigest())
            .with_header("x-debug-note", f"caller {key}")
        )
        response = await session.upstream.send(head, iterate_once(request.body))
        body = b"".join([chunk async for chunk in response.body])
        await response.aclose()
        assert response.head.status == 200, body
        evidence.add("debug response", body.decode(errors="replace"))
        await session.disconnect()
        await session.close(0)
        return session.id, opened.token


def _refusals(flow: Flow, key: str, session_token: str) -> None:
    """The tokens keep being presented where they are refused; every answer is kept."""
    as_key = flow.admin.with_token(key)
    as_session = flow.admin.with_token(session_token)
    try:
        attempts = [
            as_key.get("/v1/api-keys"),  # a debugger may not
            as_key.get(f"/v1/deployments/{key}"),  # the token as a reference
            as_key.get("/v1/nowhere", params={"token": key}),
            as_session.get("/v1/deployments"),  # an ended session's token
        ]
        key_id = "key_" + key.split("_")[2]
        assert flow.admin.delete(f"/v1/api-keys/{key_id}").status_code == 200
        attempts.append(as_key.get("/v1/debug-sessions"))  # revoked now
        for response in attempts:
            assert response.status_code >= 400, response.text
            flow.evidence.response("API errors", response)
    finally:
        as_key.close()
        as_session.close()


def _collect(flow: Flow) -> None:
    evidence, admin = flow.evidence, flow.admin
    after = 0
    while page := admin.get("/v1/audit", params={"after": after, "limit": 1000}).json()["items"]:
        evidence.add("audit trail", page)
        after = page[-1]["seq"]
    evidence.response("deployment status", admin.get(f"/v1/deployments/{flow.deployment_id}"))
    evidence.response("commands", admin.get("/v1/commands", params={"limit": 500}))
    evidence.response("debug sessions", admin.get("/v1/debug-sessions"))
    evidence.add("manager log", flow.manager.log(tail=None))
    evidence.add("agent log", flow.agent.log_path.read_text())
    for log in sorted((flow.agent.area / "logs").glob("*.log")):
        evidence.add(f"function log {log.name}", log.read_text())


async def test_canaries_never_leave_their_place(
    flow: Flow, moto: MotoServer, tmp_path: Path
) -> None:
    canaries = {"vault": _canary("vault"), "env": _canary("env")}
    _release(flow, tmp_path / "app", canaries["env"])
    area = Area(flow.agent.area)
    LocalVault(area.vault_file("secrets"), area.key_file("secrets")).set_secret(
        "db-password", canaries["vault"]
    )

    vault_failure = _run_failing_command(flow, "use-vault")
    env_failure = _run_failing_command(flow, "use-env")

    group = unique("push")
    flow.admin.create_group(group)
    name = unique("acct")
    register_aws(flow.admin, moto, group, name)
    created = flow.admin.post("/v1/api-keys", json={"name": "canary", "role": "debugger"})
    canaries["key"] = created.json()["key"]  # shown in this one response, and nowhere else
    session_id, canaries["session"] = await _debug_through_the_tunnel(
        flow, f"{group}/{name}", canaries["key"], flow.evidence
    )
    flow.evidence.response("debug session", flow.admin.get(f"/v1/debug-sessions/{session_id}"))
    requests = flow.admin.get(f"/v1/debug-sessions/{session_id}/requests")
    assert [r["target"] for r in flow.evidence.response("proxied requests", requests)["items"]] == [
        "sts:GetCallerIdentity"
    ]
    _refusals(flow, canaries["key"], canaries["session"])
    _collect(flow)

    assert not flow.evidence.leaks(canaries)
    # The secrets did reach the places they would have leaked to, masked:
    assert (
        vault_failure["error"]["message"]
        == f"RuntimeError: the database refused the password {REDACTED}"
    )
    assert (
        env_failure["error"]["message"] == f"RuntimeError: the payment API refused key {REDACTED}"
    )
    function_log = flow.evidence.texts["function log api.log"]
    assert f"connecting to the database with password {REDACTED}" in function_log
    assert f"calling the payment API with key {REDACTED}" in function_log


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back the logging configuration a test replaces (the handlers, levels and filters of
    the loggers the manager's configuration touches)."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "alien"]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
    yield
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.filters[:] = handlers, filters
        logger.setLevel(level)
        logger.propagate = propagate


def test_every_handler_of_the_manager_log_configuration_redacts(
    capfd: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    """What ``alien serve`` hands uvicorn: whichever logger a line comes from — ours, uvicorn's
    error and access logs, a library's warning through the root logger — it is redacted."""
    canary = _canary("logged")
    add_secret(canary)
    logging.config.dictConfig(log_config("info"))
    logging.getLogger("alien.manager.debug").warning("tunnel for %s refused", canary)
    logging.getLogger("uvicorn.error").warning("connection from %s dropped", canary)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/x?note={canary}", "1.1", 404
    )
    logging.getLogger("sqlalchemy.pool").warning("pool checked out %s", canary)
    logging.getLogger("alien.manager").info(
        "presented Authorization: Bearer ax_key_0123456789abcdef_%s", "s" * 43
    )
    err = capfd.readouterr().err
    assert canary not in err and "s" * 43 not in err
    assert err.count(REDACTED) == 5, err
