"""Signed-URL routes for whoever runs a command's handler (no token: the URL is the authority).

* ``GET /v1/command-blobs/{id}/params`` — the command's large params document;
* ``PUT /v1/command-blobs/{id}/result`` — upload a large result document (streamed, hashed);
  the answer is the ``BlobRef`` to send back as the response's ``result_ref``;
* ``GET /v1/command-blobs/{id}/result`` — a large result, for the caller (URL from the command);
* ``POST /v1/command-responses/{id}`` — the envelope's ``response_url``: post the
  ``CommandResponse``; the answer is a ``command_receipt``.

Each URL carries ``dep``, ``exp`` (unix seconds), for result uploads and responses ``lease``,
and ``sig`` (see :mod:`alien.manager.commands.signing`); a wrong or expired signature is 403
``SIGNED_URL_INVALID`` / ``SIGNED_URL_EXPIRED``; a URL of a command that no longer exists (its
deployment was deleted) is 404 ``COMMAND_NOT_FOUND``. A result upload under a lease that is no
longer the command's current one is 409 ``STALE_LEASE``; a second, different result under the
same lease 409 ``RESULT_ALREADY_UPLOADED``. Bodies stream from and to disk in chunks, so a
100 MB payload never sits in the manager's memory.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from alien.errors import NotFound, ValidationError
from alien.manager.api.deps import require
from alien.manager.api.uploads import staged_document
from alien.manager.auth import Action
from alien.manager.commands import records
from alien.manager.commands.center import CommandCenter, center_of
from alien.manager.commands.offers import signed_url
from alien.manager.commands.records import CommandSnapshot
from alien.manager.commands.signing import Grant, UrlOp
from alien.manager.schemas import TOO_LARGE
from alien.protocol.agent_channel import CommandReceipt, CommandResponseMessage
from alien.protocol.command_messages import COMMAND_NOT_FOUND, BlobRef, CommandResponse
from alien.protocol.wire import parse

router = APIRouter(tags=["command payloads (signed URLs)"])
Dep = Annotated[str, Query(description="the deployment the URL was signed for")]
Exp = Annotated[int, Query(description="expiry, unix seconds")]
# The signature is verified by the route's one authorisation dependency (``require``).
ParamsFetch = Annotated[Grant, Depends(require(Action.COMMAND_PARAMS_FETCH))]
ResultStore = Annotated[Grant, Depends(require(Action.COMMAND_RESULT_STORE))]
ResultFetch = Annotated[Grant, Depends(require(Action.COMMAND_RESULT_FETCH))]
Respond = Annotated[Grant, Depends(require(Action.COMMAND_RESPOND))]
_JSON_FILE = {200: {"content": {"application/json": {}}, "description": "the JSON document"}}


def _load(center: CommandCenter, command_id: str, deployment_id: str) -> CommandSnapshot:
    with center.core.db.read() as session:
        snap = records.read(session, command_id)
    if snap is None or snap.deployment_id != deployment_id:
        raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
    return snap


def _file(center: CommandCenter, sha256: str) -> FileResponse:
    path = center.payloads.path_for(f"sha256:{sha256}")
    if not path.exists():
        raise NotFound(
            "the payload is no longer stored (payloads are removed some time after their "
            "command ended: ALIEN_COMMAND_PAYLOAD_RETENTION)",
            field="payload",
        )
    return FileResponse(path, media_type="application/json", headers={"X-Alien-Sha256": sha256})


@router.get("/v1/command-blobs/{command_id}/params", responses=_JSON_FILE)
async def get_params(
    command_id: str, request: Request, dep: Dep, exp: Exp, _: ParamsFetch
) -> FileResponse:
    center = center_of(request)
    snap = await run_in_threadpool(_load, center, command_id, dep)
    if snap.params_sha256 is None:
        raise NotFound("this command's params are inline, in its envelope", field="params")
    return _file(center, snap.params_sha256)


@router.put("/v1/command-blobs/{command_id}/result", response_model=BlobRef, responses=TOO_LARGE)
async def put_result(
    command_id: str, request: Request, dep: Dep, exp: Exp, grant: ResultStore
) -> BlobRef:
    """Store a large result under the URL's lease; send the answer back as ``result_ref`` in
    that lease's response. The bytes are staged and stored only once the lease is known to be
    still current (409 ``STALE_LEASE`` otherwise, storing nothing)."""
    center = center_of(request)
    lease = grant.extra
    await center.writer.run(center.ops.check_result_upload(command_id, dep, lease))
    limit = center.settings.max_payload_bytes
    async with staged_document(request, center.payloads, limit=limit, what="the result") as staged:
        await center.store_result(command_id, dep, lease, staged)
    expires = max(exp, int(time.time() + center.settings.caller_url_seconds))
    fetch = Grant(UrlOp.RESULT_GET, command_id, dep, expires)
    base = str(request.base_url).rstrip("/")
    url = signed_url(center.signer, base, f"/v1/command-blobs/{command_id}/result", fetch)
    sha256 = staged.info.digest.removeprefix("sha256:")
    return BlobRef(url=url, size=staged.info.size, sha256=sha256)


@router.get("/v1/command-blobs/{command_id}/result", responses=_JSON_FILE)
async def get_result(
    command_id: str, request: Request, dep: Dep, exp: Exp, _: ResultFetch
) -> FileResponse:
    center = center_of(request)
    snap = await run_in_threadpool(_load, center, command_id, dep)
    response = CommandResponse.model_validate(snap.response) if snap.response else None
    if response is None or response.result_ref is None:
        raise NotFound("this command has no stored result", field="result")
    return _file(center, response.result_ref.sha256)


@router.post("/v1/command-responses/{command_id}", response_model=CommandReceipt)
async def post_response(
    command_id: str,
    request: Request,
    dep: Dep,
    exp: Exp,
    lease: Annotated[str, Query(description="the lease the URL was signed for")],
    _: Respond,
) -> CommandReceipt:
    """The envelope's ``response_url``: answer one delivery without a token. A command that
    no longer exists (its deployment was deleted) is 404 ``COMMAND_NOT_FOUND``, as for the
    other signed URLs; every other refusal is the receipt's."""
    center = center_of(request)
    response = parse(CommandResponse, await request.body())
    if response.command_id != command_id or response.lease_id != lease:
        raise ValidationError("this URL answers another command or lease", field="lease_id")
    receipt = await center.agent_message(dep, CommandResponseMessage(response=response))
    if receipt.code == COMMAND_NOT_FOUND:
        raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
    return receipt
