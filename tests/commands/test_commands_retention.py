"""Retention, real manager: large params and results are removed from the blob store
``ALIEN_COMMAND_PAYLOAD_RETENTION`` seconds after their command ended (params nobody used: after
their upload), never while a command that names them is still running; ended commands are
removed ``ALIEN_COMMAND_RETENTION`` seconds after they ended, live ones never.

The last tests run a collection in the same writer batch as an operation that names a payload
(an in-process manager, whose writer on SQLite takes everything submitted in one turn of the
loop as one batch): rows the batch added are not in the table until its commit, and the
collection must count them all the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_double import (
    CommandAgent,
    Deployment,
    create_command,
    payload_path,
    running_deployment,
)
from in_process import InProcessManager
from sqlalchemy import update
from sqlalchemy.orm import Session

from alien.manager.commands import retention
from alien.manager.commands.schemas import CommandCreate, ParamsRef
from alien.manager.commands.writer import Op
from alien.manager.db import utcnow
from alien.manager.ids import new_id
from alien.manager.models import CommandPayload
from support.api import ApiClient
from support.manager import ManagerProcess

RETENTION = "1"
BLOB = 300 * 1024


def _blob_path(manager: ManagerProcess | InProcessManager, sha256: str) -> Path:
    return payload_path(manager.data_dir, sha256)


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


# --- a collection in the same writer batch as a new row ---------------------------------------

HOUR = 3600.0


def _in_one_batch(manager: InProcessManager, *ops: Op[Any]) -> list[Any]:
    """Run ``ops`` in one writer batch, in this order; their results (or errors)."""

    async def submit_all() -> list[Any]:
        futures = [manager.center.writer.submit(op) for op in ops]
        return await asyncio.gather(*futures, return_exceptions=True)

    return manager.call(submit_all())


def _backdate(sha256: str) -> Op[None]:
    """Make the params uploads of ``sha256`` a day old (expired for an hour's retention)."""

    def op(session: Session) -> tuple[None, list[Any]]:
        day_ago = utcnow() - timedelta(days=1)
        session.execute(
            update(CommandPayload).where(CommandPayload.sha256 == sha256).values(created_at=day_ago)
        )
        return None, []

    return op


def _names(manager: InProcessManager, sha256: str) -> int:
    """How many payload rows name ``sha256``."""
    with manager.center.core.db.read() as session:
        rows = session.query(CommandPayload).filter(CommandPayload.sha256 == sha256)
        return rows.count()


@pytest.fixture
def in_process_admin(in_process: InProcessManager) -> Iterator[tuple[ApiClient, Deployment]]:
    with ApiClient(in_process.url, in_process.admin_key) as admin:
        yield admin, running_deployment(admin)


def test_a_collection_keeps_the_file_of_an_upload_recorded_earlier_in_its_batch(
    in_process: InProcessManager, in_process_admin: tuple[ApiClient, Deployment]
) -> None:
    """The same params uploaded again just as their first upload expires: the new row names
    the file, so it must stay."""
    admin, deployment = in_process_admin
    ref = _upload(admin, deployment, b"a")
    sha256, size = str(ref["sha256"]), int(str(ref["size"]))
    ops = in_process.center.ops
    recorded, collected = _in_one_batch(
        in_process,
        _backdate(sha256),
        ops.record_params_payload(in_process.admin_key, deployment.ref, sha256, size),
        retention.collect(in_process.center.payloads, HOUR),
    )[1:]
    assert recorded == deployment.id and collected == 1  # only the expired row went
    assert _names(in_process, sha256) == 1
    assert _blob_path(in_process, sha256).exists()
    assert create_command(admin, deployment, params_ref=ref).status_code == 201


def test_a_collection_keeps_params_a_command_created_earlier_in_its_batch_names(
    in_process: InProcessManager, in_process_admin: tuple[ApiClient, Deployment]
) -> None:
    """A command naming params whose upload expired, created just before the collection: the
    command is live, so its params stay."""
    admin, deployment = in_process_admin
    ref = _upload(admin, deployment, b"b")
    sha256 = str(ref["sha256"])
    body = CommandCreate(
        deployment=deployment.ref, command="echo", params_ref=ParamsRef.model_validate(ref)
    )
    created, collected = _in_one_batch(
        in_process,
        _backdate(sha256),
        in_process.center.ops.create(in_process.admin_key, body, new_id("cmd")),
        retention.collect(in_process.center.payloads, HOUR),
    )[1:]
    assert created.snapshot.params_sha256 == sha256 and collected == 0
    assert _names(in_process, sha256) == 1
    assert _blob_path(in_process, sha256).exists()


def test_a_command_collection_keeps_a_file_an_upload_recorded_earlier_in_its_batch_names(
    in_process: InProcessManager, in_process_admin: tuple[ApiClient, Deployment]
) -> None:
    """An ended command's result removed with it, while the same bytes are recorded as params
    in the same batch: the params row names the file, so it must stay."""
    admin, deployment = in_process_admin
    document = b'{"blob":"' + b"c" * BLOB + b'"}'
    create_command(admin, deployment, timeout=60)
    with CommandAgent(in_process.ws_url, deployment.token) as agent:
        offer = agent.command()
        uploaded = httpx.put(offer["result_upload_url"], content=document, timeout=10)
        assert uploaded.status_code == 200, uploaded.text
        result_ref = uploaded.json()
        assert agent.respond(offer, ok=True, result=None, result_ref=result_ref)["ok"]
    sha256, size = result_ref["sha256"], result_ref["size"]
    ops = in_process.center.ops
    recorded, removed = _in_one_batch(
        in_process,
        ops.record_params_payload(in_process.admin_key, deployment.ref, sha256, size),
        retention.collect_commands(in_process.center.payloads, 0.0),
    )
    assert recorded == deployment.id and removed >= 1
    assert _names(in_process, sha256) == 1  # the params row; the result's went with its command
    assert _blob_path(in_process, sha256).exists()
