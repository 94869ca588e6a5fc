"""A test agent for remote commands: a real WebSocket client speaking the command messages.

The agent's execution side is not wired to commands yet, so the tests (and ``bench/commands.py
--agent test``) drive the agent end of the channel with this: it connects with
``support.agent.AgentSocket``, says ``hello`` with the ``commands`` capability, validates every
message the manager sends with the protocol's own parser, and answers deliveries either one by
one under the test's control (``command`` / ``respond`` / ``ack`` / ``renew``) or automatically
(``serve`` in a thread, or ``python agent_double.py`` as a process, for the bench).

It also knows how to make a deployment *run* a release with command-enabled functions
(``running_deployment``): onboard, release, and report the lifecycle events an agent would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`

from alien.protocol.agent_channel import parse_manager_message
from alien.protocol.command_messages import MAX_INLINE_BYTES
from support.agent import AgentSocket
from support.api import ApiClient
from support.names import unique
from support.payloads import sample_package

KNOWN_COMMANDS = {"api": ["echo", "noop", "slow", "fail", "generate-report"]}
"""The command names the test deployments' agent reports for their ``api`` function."""

Handler = Callable[[dict[str, Any]], dict[str, Any]]
"""offer → response fields: ``{"ok": True, "result": …}`` or ``{"ok": False, "error": {…}}``."""


def command_manifest(functions: dict[str, bool], name: str = "cmd-app") -> dict[str, Any]:
    """A manifest with one function per entry (id → commands enabled)."""
    return {
        "manifest_version": 1,
        "name": name,
        "resources": [
            {
                "id": fid,
                "kind": "function",
                "lifecycle": "live",
                "config": {
                    "code": {"src": fid, "entrypoint": "app:app"},
                    "commands_enabled": enabled,
                },
            }
            for fid, enabled in functions.items()
        ],
    }


@dataclass
class Deployment:
    id: str
    name: str
    group: str
    token: str
    release: str

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.name}"


def running_deployment(
    admin: ApiClient,
    *,
    functions: dict[str, bool] | None = None,
    commands: dict[str, list[str]] | None = None,
    group: str | None = None,
) -> Deployment:
    """A deployment whose current release has ``functions`` (default: ``api`` with commands),
    as a real agent would leave it: provisioned, deployed, its command names reported."""
    group = group or admin.create_group(unique("grp"))["name"]
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    dep, token = onboarded["deployment"], onboarded["token"]
    release = admin.create_release(
        {"type": "deployments", "deployments": [dep["id"]]},
        manifest=command_manifest(functions or {"api": True}),
        package=sample_package(unique("pkg")),
    )["id"]
    agent = admin.with_token(token)
    events: list[dict[str, Any]] = [
        {"type": "provision_started"},
        {"type": "provisioned"},
        {"type": "deploy_started", "release": release},
        {"type": "deploy_succeeded", "release": release},
    ]
    for event in events:
        response = agent.post("/v1/agent/status", json={"v": 1, "type": "status", "event": event})
        assert response.status_code == 200, response.text
    if commands is not None:
        report_commands(agent, commands)
    agent.close()
    return Deployment(dep["id"], dep["name"], group, token, release)


def wait_disconnected(client: ApiClient, deployment: Deployment, timeout: float = 10.0) -> None:
    """Until the manager noticed the agent left (closing a socket is not the server knowing it:
    a command created before that would still be handed to the departed agent)."""
    deadline = time.monotonic() + timeout
    while client.deployment(deployment.id)["connected"]:
        assert time.monotonic() < deadline, "the manager still sees the agent connected"
        time.sleep(0.02)


def create_command(
    client: ApiClient, deployment: Deployment | str, command: str = "echo", **body: Any
) -> httpx.Response:
    """``POST /v1/commands`` for ``deployment`` (``wait`` goes to the query); the response."""
    wait = body.pop("wait", None)
    ref = deployment.ref if isinstance(deployment, Deployment) else deployment
    return client.post(
        "/v1/commands",
        params={"wait": wait} if wait is not None else None,
        json={"deployment": ref, "command": command, **body},
    )


def report_commands(agent: ApiClient, commands: dict[str, list[str]]) -> None:
    """Report the command names per function in the status detail, as the agent does."""
    body = {"v": 1, "type": "status", "detail": {"commands": commands}}
    response = agent.post("/v1/agent/status", json=body)
    assert response.status_code == 200, response.text


def payload_path(data_dir: Path, sha256: str) -> Path:
    """Where the manager of ``data_dir`` stores the large command payload ``sha256``."""
    return data_dir / "command-blobs" / "sha256" / sha256[:2] / sha256


class CommandAgent:
    """The agent end of ``/v1/agent/connect`` for one deployment (see the module docstring)."""

    def __init__(
        self, ws_url: str, token: str, *, capabilities: tuple[str, ...] = ("commands",)
    ) -> None:
        self.socket = AgentSocket(ws_url, token)
        self._backlog: list[dict[str, Any]] = []
        self.socket.send(
            {
                "v": 1,
                "type": "hello",
                "agent_version": "test-agent/1",
                "capabilities": list(capabilities),
            }
        )
        self.welcome = self.next("welcome")

    # --- reading ---------------------------------------------------------------------------

    def recv(self, timeout: float) -> dict[str, Any]:
        message = self.socket.recv(timeout)
        parse_manager_message(message)  # the manager must only ever send valid messages
        return message

    def next(
        self,
        kind: str,
        timeout: float = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The next message of type ``kind`` (matching ``where``); others are kept for later."""

        def wanted(m: dict[str, Any]) -> bool:
            return m["type"] == kind and (where is None or where(m))

        for i, message in enumerate(self._backlog):
            if wanted(message):
                return self._backlog.pop(i)
        while True:
            message = self.recv(timeout)
            if wanted(message):
                return message
            self._backlog.append(message)

    def command(self, timeout: float = 5.0, command_id: str | None = None) -> dict[str, Any]:
        """The next ``command`` delivery (of ``command_id``, if given)."""
        where = None if command_id is None else (lambda m: m["envelope"]["id"] == command_id)
        return self.next("command", timeout, where)

    def receipt(self, offer: dict[str, Any], of: str, timeout: float = 5.0) -> dict[str, Any]:
        envelope = offer["envelope"]
        return self.next(
            "command_receipt",
            timeout,
            lambda m: (
                m["command_id"] == envelope["id"]
                and m["lease_id"] == envelope["lease_id"]
                and m["of"] == of
            ),
        )

    def pending(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self._backlog if m["type"] == kind]

    # --- answering --------------------------------------------------------------------------

    def ack(self, offer: dict[str, Any]) -> dict[str, Any]:
        self._lease_message("command_ack", offer)
        return self.receipt(offer, "ack")

    def renew(self, offer: dict[str, Any]) -> dict[str, Any]:
        self._lease_message("command_renew", offer)
        return self.receipt(offer, "renew")

    def _lease_message(self, kind: str, offer: dict[str, Any]) -> None:
        envelope = offer["envelope"]
        self.socket.send(
            {"v": 1, "type": kind, "command_id": envelope["id"], "lease_id": envelope["lease_id"]}
        )

    def send_response(self, offer: dict[str, Any], **fields: Any) -> None:
        envelope = offer["envelope"]
        response = {"command_id": envelope["id"], "lease_id": envelope["lease_id"], **fields}
        self.socket.send({"v": 1, "type": "command_response", "response": response})

    def respond(self, offer: dict[str, Any], result: Any = None, **fields: Any) -> dict[str, Any]:
        """Answer ``offer`` (success with ``result`` unless ``fields`` say otherwise) and return
        the manager's receipt."""
        self.send_response(offer, **({"ok": True, "result": result} | fields))
        return self.receipt(offer, "response")

    def serve(self, handler: Handler) -> threading.Thread:
        """Answer every delivery with ``handler`` in a background thread until closed."""

        def loop() -> None:
            try:
                while True:
                    message = self.recv(timeout=None)  # type: ignore[arg-type]
                    if message["type"] == "command":
                        self.send_response(message, **handler(message))
            except (ConnectionClosed, OSError):
                return

        thread = threading.Thread(target=loop, name="test-agent", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> CommandAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- handlers ----------------------------------------------------------------------------------


def echo(offer: dict[str, Any]) -> dict[str, Any]:
    """Succeed with ``{"command", "params", "attempt"}`` (params fetched when they came by
    reference); ``fail`` fails with ``HANDLER_ERROR``, as a handler that raised would."""
    envelope = offer["envelope"]
    if envelope["command"] == "fail":
        error = {"code": "HANDLER_ERROR", "message": "ValueError: asked to fail", "details": {}}
        return {"ok": False, "error": error}
    result = {
        "command": envelope["command"],
        "params": params_of(envelope),
        "attempt": envelope["attempt"],
    }
    return success(offer, result)


def success(offer: dict[str, Any], result: Any) -> dict[str, Any]:
    """Response fields for ``result``: inline, or uploaded to the delivery's signed URL when it
    is over the inline limit (what a function runtime's offload does)."""
    document = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
    if len(document) <= MAX_INLINE_BYTES:
        return {"ok": True, "result": result}
    uploaded = httpx.put(offer["result_upload_url"], content=document, timeout=60)
    uploaded.raise_for_status()
    return {"ok": True, "result": None, "result_ref": uploaded.json()}


def noop(offer: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": None}


def params_of(envelope: dict[str, Any]) -> Any:
    """The envelope's params, downloading and verifying them when they came by reference."""
    ref = envelope.get("params_ref")
    if ref is None:
        return envelope["params"]
    response = httpx.get(ref["url"], timeout=60)
    response.raise_for_status()
    assert hashlib.sha256(response.content).hexdigest() == ref["sha256"]
    return json.loads(response.content)


def main() -> None:
    """``python agent_double.py --manager URL --token ax_dep_… [--handler noop|echo]``: answer
    every command until killed (the bench's ``--agent test``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manager", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--handler", choices=["noop", "echo"], default="noop")
    args = parser.parse_args()
    ws_url = "ws" + args.manager.removeprefix("http")
    handler = {"noop": noop, "echo": echo}[args.handler]
    with CommandAgent(ws_url, args.token) as agent:
        print("test agent ready", flush=True)
        agent.serve(handler).join()


if __name__ == "__main__":
    main()
