"""Retention, real manager: large params and results are removed from the blob store
``ALIEN_COMMAND_PAYLOAD_RETENTION`` seconds after their command ended (params nobody used: after
their upload), never while a command that names them is still running; ended commands are
removed ``ALIEN_COMMAND_RETENTION`` seconds after they ended, live ones never."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from agent_double import CommandAgent, Deployment, create_command, running_deployment

from support.api import ApiClient
from support.manager import ManagerProcess

RETENTION = "1"
BLOB = 300 * 1024


def _blob_path(manager: ManagerProcess, sha256: str) -> Path:
    return manager.data_dir / "command-blobs" / "sha256" / sha256[:2] / sha256


def _upload(admin: ApiClient, deployment: Deployment, fill: bytes) -> dict[str, object]:
    body = b'{"blob":"' + fill * BLOB + b'"}'
    response = admin.post(
        "/v1/commands/payloads", params={"deployment": deployment.ref}, content=body
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def short_retention(
    own_manager: Callable[..., ManagerProcess],
) -> Iterator[tuple[ManagerProcess, ApiClient, Deployment]]:
    """A manager keeping payloads for one second, its admin client and a running deployment."""
    manager = own_manager(ALIEN_COMMAND_PAYLOAD_RETENTION=RETENTION)
    with manager.client() as admin:
        yield manager, admin, running_deployment(admin)


def test_expired_payloads_are_removed_and_live_ones_kept(
    short_retention: tuple[ManagerProcess, ApiClient, Deployment],
) -> None:
    manager, admin, deployment = short_retention
    unused = _upload(admin, deployment, b"u")
    used = _upload(admin, deployment, b"p")
    created = create_command(admin, deployment, params_ref=used, timeout=60).json()
    with CommandAgent(manager.ws_url, deployment.token) as agent:
        offer = agent.command()
        params_url = offer["envelope"]["params_ref"]["url"]

        _eventually(lambda: not _blob_path(manager, str(unused["sha256"])).exists(), "unused")
        time.sleep(1.5)  # well past the retention: the running command's params stay
        assert _blob_path(manager, str(used["sha256"])).exists()
        assert httpx.get(params_url, timeout=10).status_code == 200

        uploaded = httpx.put(offer["result_upload_url"], content=b'{"r":"' + b"r" * BLOB + b'"}')
        assert uploaded.status_code == 200, uploaded.text
        result_ref = uploaded.json()
        assert agent.respond(offer, ok=True, result=None, result_ref=result_ref)["ok"]
    done = admin.get(f"/v1/commands/{created['id']}").json()
    assert done["state"] == "succeeded"

    # Ended: both its params and its result go once the retention has passed.
    for sha256 in (used["sha256"], result_ref["sha256"]):
        _eventually(lambda s=sha256: not _blob_path(manager, str(s)).exists(), str(sha256))
    gone = httpx.get(done["result_ref"]["url"], timeout=10)
    assert gone.status_code == 404
    assert "no longer stored" in gone.json()["error"]["message"]
    assert httpx.get(params_url, timeout=10).status_code == 404


def test_the_same_content_uploaded_again_is_stored_again(
    short_retention: tuple[ManagerProcess, ApiClient, Deployment],
) -> None:
    manager, admin, deployment = short_retention
    first = _upload(admin, deployment, b"s")
    path = _blob_path(manager, str(first["sha256"]))
    _eventually(lambda: not path.exists(), "the first upload to expire")
    assert _upload(admin, deployment, b"s") == first
    assert path.exists()
    created = create_command(admin, deployment, params_ref=first, timeout=60)
    assert created.status_code == 201, created.text


def test_ended_commands_are_removed_after_their_retention_and_live_ones_kept(
    own_manager: Callable[..., ManagerProcess],
) -> None:
    manager = own_manager(ALIEN_COMMAND_RETENTION=RETENTION)
    with manager.client() as admin:
        deployment = running_deployment(admin)
        waiting = create_command(admin, deployment, timeout=120).json()  # no agent yet: pending
        with CommandAgent(manager.ws_url, deployment.token) as agent:
            offer = agent.command(command_id=waiting["id"])
            ended = create_command(admin, deployment, timeout=120).json()
            second = agent.command(command_id=ended["id"])
            uploaded = httpx.put(
                second["result_upload_url"], content=b'{"r":"' + b"r" * BLOB + b'"}'
            )
            assert uploaded.status_code == 200, uploaded.text
            result_ref = uploaded.json()
            assert agent.respond(second, ok=True, result=None, result_ref=result_ref)["ok"]

            _eventually(
                lambda: admin.get(f"/v1/commands/{ended['id']}").status_code == 404,
                "the ended command to be removed",
            )
            gone = admin.get(f"/v1/commands/{ended['id']}").json()
            assert gone["error"]["code"] == "COMMAND_NOT_FOUND"
            # Its result went with it; the audit trail keeps its records.
            blob = _blob_path(manager, str(result_ref["sha256"]))
            _eventually(lambda: not blob.exists(), "its result to be removed")
            trail = admin.get("/v1/audit", params={"target": ended["id"]}).json()["items"]
            assert {r["action"] for r in trail} >= {"command.create", "command.result"}

            time.sleep(1.5)  # well past the retention: the running command stays
            assert admin.get(f"/v1/commands/{waiting['id']}").json()["state"] == "dispatched"
            assert agent.respond(offer, ok=True, result={"done": True})["ok"]
