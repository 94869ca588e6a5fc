"""A deleted deployment's commands go with it — their signed URLs included — and so do their
payload files; a result whose record does not commit leaves no file behind."""

from __future__ import annotations

import hashlib
import uuid

import httpx
from agent_double import CommandAgent, create_command, payload_path, running_deployment
from in_process import InProcessManager
from sqlalchemy import delete

from alien.manager.models import Command
from support.api import ApiClient
from support.manager import ManagerProcess


def _document() -> bytes:
    """A JSON document no other upload has (so whether it is stored shows in the blob store)."""
    return b'{"doc":"' + uuid.uuid4().hex.encode() + b'"}'


def _sha256(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()


def _assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "COMMAND_NOT_FOUND"


def test_a_deleted_deployments_signed_urls_stop_working_and_its_files_go(
    commands_manager: ManagerProcess, admin: ApiClient
) -> None:
    """The command was still live when its deployment went (long timeout, its offer taken):
    neither its upload URL nor its response URL may act on it any more — no file stored, no
    result recorded — and the payloads uploaded for it are deleted, files included."""
    deployment = running_deployment(admin)
    params = _document()
    uploaded = admin.post(
        "/v1/commands/payloads",
        params={"deployment": deployment.ref},
        content=params,
        headers={"content-type": "application/json"},
    )
    assert uploaded.status_code == 201, uploaded.text
    with CommandAgent(commands_manager.ws_url, deployment.token) as agent:
        created = create_command(admin, deployment, params_ref=uploaded.json(), timeout=600)
        offer = agent.command()
        assert agent.ack(offer)["ok"]
        result = _document()
        stored = httpx.put(offer["result_upload_url"], content=result, timeout=10)
        assert stored.status_code == 200, stored.text
        assert admin.delete(f"/v1/deployments/{deployment.id}").status_code == 204

    late = _document()
    _assert_not_found(httpx.put(offer["result_upload_url"], content=late, timeout=10))
    envelope = offer["envelope"]
    answer = {"command_id": envelope["id"], "lease_id": envelope["lease_id"], "ok": True}
    _assert_not_found(httpx.post(envelope["response_url"], json=answer, timeout=10))
    _assert_not_found(admin.get(f"/v1/commands/{created.json()['id']}"))
    for document in (params, result, late):
        assert not payload_path(commands_manager.data_dir, _sha256(document)).exists()
    audited = admin.get("/v1/audit", params={"deployment": deployment.id}).json()["items"]
    assert "command.result" not in [record["action"] for record in audited]


def test_a_result_whose_record_does_not_commit_leaves_no_file(
    in_process: InProcessManager,
) -> None:
    """The command row vanished behind the writer's back (as a deployment's deletion once made
    it): the upload is still accepted from the cache and its file placed, but its row fails its
    foreign key — then the file must go too, as nothing would ever collect it."""
    with ApiClient(in_process.url, in_process.admin_key) as admin:
        deployment = running_deployment(admin)
        with CommandAgent(in_process.ws_url, deployment.token) as agent:
            create_command(admin, deployment, timeout=600)
            offer = agent.command()
            with in_process.center.core.db.write() as session:
                session.execute(delete(Command).where(Command.id == offer["envelope"]["id"]))
            document = _document()
            refused = httpx.put(offer["result_upload_url"], content=document, timeout=10)
    assert refused.status_code == 409, refused.text
    assert not payload_path(in_process.data_dir, _sha256(document)).exists()
