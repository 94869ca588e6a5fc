"""``/v1/commands``: create, read (with a long-poll ``wait``), list and cancel remote commands.

``POST /v1/commands?wait=30`` creates a command and answers as soon as it ended — one request for
a whole round trip when the handler is quick. Without ``wait`` (or when it runs out) the answer
is the command as it is then; ``GET /v1/commands/{id}?wait=30`` waits for the end. Params over
256 KiB are uploaded first (``POST /v1/commands/payloads``) and passed as ``params_ref``.

The common create request is answered in front of FastAPI (:mod:`.fast_create`), through the
same center call and response encoding; this route defines it (and answers all the rest).
Routes that can wait are ``async`` so a waiting request holds no thread; bodies are serialised
once, straight from the response model. The token is checked for form here and verified inside
the operation's own transaction (a create costs one batched write, not a read and a write).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alien.errors import ValidationError
from alien.manager.api.deps import Core, require
from alien.manager.api.uploads import staged_document
from alien.manager.auth import Action, authorize
from alien.manager.commands.center import CommandCenter, center_of
from alien.manager.commands.ops import caller_of
from alien.manager.commands.schemas import (
    CommandCancelRequest,
    CommandCreate,
    CommandOut,
    CommandPage,
    PayloadOut,
)
from alien.manager.core import ManagerCore
from alien.manager.schemas import TOO_LARGE
from alien.manager.services import deployments
from alien.protocol.commands import CommandState

router = APIRouter(tags=["commands"])


# The token's form is checked by the dependency; whether it is valid and may take the route's
# action is decided inside the operation's own transaction, with that same action.
Reader = Annotated[str, Depends(require(Action.COMMANDS_READ, deferred=True))]
Invoker = Annotated[str, Depends(require(Action.COMMANDS_INVOKE, deferred=True))]
Canceller = Annotated[str, Depends(require(Action.COMMANDS_CANCEL, deferred=True))]
Wait = Annotated[float, Query(ge=0, description="seconds to wait for the command to end (≤ 60)")]
_REPLAYED = {200: {"model": CommandOut, "description": "an idempotent replay: the same command"}}


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def checked_wait(center: CommandCenter, wait: float) -> float:
    limit = center.core.settings.max_wait
    if wait > limit:
        raise ValidationError(f"wait may be at most {limit:g} seconds", field="wait")
    return wait


@router.post("/v1/commands", status_code=201, response_model=CommandOut, responses=_REPLAYED)
async def create_command(
    body: CommandCreate, request: Request, token: Invoker, wait: Wait = 0.0
) -> Response:
    """Create a command (201), or return the one created earlier with the same
    ``idempotency_key`` and request (200); 409 ``IDEMPOTENCY_KEY_REUSED`` for another request.
    With ``wait`` the answer comes as soon as the command ended (or when ``wait`` ran out)."""
    center = center_of(request)
    created = await center.create(token, body, wait=checked_wait(center, wait))
    view = center.view(created.snapshot, base_url(request))
    return json_response(view, 200 if created.replayed else 201)


@router.get("/v1/commands", response_model=CommandPage)
def list_commands(
    request: Request,
    token: Reader,
    deployment: Annotated[
        str | None, Query(description="deployment id, group/name or name")
    ] = None,
    group: Annotated[str | None, Query(description="group id or name")] = None,
    state: Annotated[list[CommandState] | None, Query(description="any of these states")] = None,
    command: Annotated[str | None, Query(description="this command name")] = None,
    before: Annotated[str | None, Query(description="only commands older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Newest first, without params and results (read one command for those)."""
    center = center_of(request)
    snaps = center.list(
        token,
        deployment=deployment,
        group=group,
        states=state,
        command=command,
        before=before,
        limit=limit,
    )
    items = [center.view(s, base_url(request), detail=False) for s in snaps]
    page = CommandPage(items=items, next_before=items[-1].id if len(items) == limit else None)
    return json_response(page)


@router.get("/v1/commands/{command_id}", response_model=CommandOut)
async def get_command(
    command_id: str, request: Request, token: Reader, wait: Wait = 0.0
) -> Response:
    """The command; with ``wait``, as soon as it ended (or when ``wait`` ran out)."""
    center = center_of(request)
    timeout = checked_wait(center, wait)
    if timeout:
        snap = await center.wait(token, command_id, timeout)
    else:
        snap = await center.get(token, command_id)
    return json_response(center.view(snap, base_url(request)))


@router.post("/v1/commands/{command_id}/cancel", response_model=CommandOut)
async def cancel_command(
    command_id: str,
    request: Request,
    token: Canceller,
    body: CommandCancelRequest | None = None,
) -> Response:
    """Cancel a command that has not ended; an agent working on it is sent ``command_cancel``.
    409 with the command's code (``COMMAND_FINISHED``, ``COMMAND_EXPIRED``, …) if it ended."""
    center = center_of(request)
    snap = await center.cancel(token, command_id, body.reason if body else None)
    return json_response(center.view(snap, base_url(request)))


_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/v1/commands/payloads",
    status_code=201,
    response_model=PayloadOut,
    responses=TOO_LARGE,
    openapi_extra=_BINARY_BODY,
)
async def upload_params(
    request: Request,
    core: Core,
    token: Invoker,
    deployment: Annotated[str, Query(description="the deployment the params are for")],
) -> PayloadOut:
    """Stream a large params document (a JSON object, the raw body) into the command blob store,
    for commands of ``deployment``; pass the answer as ``params_ref`` when creating one."""
    center = center_of(request)
    await run_in_threadpool(_authorize_upload, core, center, token, deployment)
    limit = center.settings.max_payload_bytes
    async with staged_document(request, center.payloads, limit=limit, what="the params") as staged:
        center.payloads.place(staged)
    info = staged.info
    sha256 = info.digest.removeprefix("sha256:")
    await center.writer.run(center.ops.record_params_payload(token, deployment, sha256, info.size))
    return PayloadOut(sha256=sha256, size=info.size)


def _authorize_upload(
    core: ManagerCore, center: CommandCenter, token: str, deployment: str
) -> None:
    """Refuse before a byte is stored (the record after the upload checks again); a known
    caller refused is audited."""
    with core.db.read() as session:
        invoke = Action.COMMANDS_INVOKE
        caller = caller_of(session, token, invoke, center.ops.audit, write=core.db.write)
        dep = deployments.resolve_deployment(session, deployment, groups=caller.groups)
        authorize(caller, Action.COMMANDS_INVOKE, deployments=[dep.id])
