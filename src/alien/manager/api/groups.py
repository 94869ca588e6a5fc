"""``/v1/groups``: deployment groups and their onboarding tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from alien.manager import audit_events
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.api.views import group_out, group_token_out
from alien.manager.auth import Action, Principal
from alien.manager.schemas import (
    GroupCreate,
    GroupOut,
    GroupTokenCreate,
    GroupTokenCreated,
    GroupTokenOut,
    GroupUpdate,
    Page,
)
from alien.manager.services import groups

router = APIRouter(prefix="/v1/groups", tags=["groups"])
Reader = Annotated[Principal, Depends(require(Action.GROUPS_READ))]
Writer = Annotated[Principal, Depends(require(Action.GROUPS_WRITE))]
TokenReader = Annotated[Principal, Depends(require(Action.GROUP_TOKENS_READ))]
TokenWriter = Annotated[Principal, Depends(require(Action.GROUP_TOKENS_WRITE))]


@router.post("", status_code=201, response_model=GroupOut)
def create_group(body: GroupCreate, core: Core, log: Audit, caller: Writer) -> GroupOut:
    with core.db.write() as session:
        group = groups.create_group(session, name=body.name, description=body.description)
        audit_events.group_changed(session, log, caller, "group.create", group)
        return group_out(group, 0)


@router.get("", response_model=Page[GroupOut])
def list_groups(core: Core, caller: Reader) -> Page[GroupOut]:
    with core.db.read() as session:
        rows = groups.list_groups(session, groups=caller.groups)
        return Page(items=[group_out(g, n) for g, n in rows])


@router.get("/{group}", response_model=GroupOut)
def get_group(group: str, core: Core, caller: Reader) -> GroupOut:
    """A group by id (``grp_…``) or name."""
    with core.db.read() as session:
        row = groups.get_group(session, group, groups=caller.groups)
        return group_out(row, groups.deployment_count(session, row.id))


@router.patch("/{group}", response_model=GroupOut)
def update_group(group: str, body: GroupUpdate, core: Core, log: Audit, caller: Writer) -> GroupOut:
    with core.db.write() as session:
        row = groups.update_group(
            session, groups.get_group(session, group), name=body.name, description=body.description
        )
        changed = body.model_dump(exclude_none=True)
        audit_events.group_changed(session, log, caller, "group.update", row, {"changed": changed})
        return group_out(row, groups.deployment_count(session, row.id))


@router.delete("/{group}", status_code=204)
def delete_group(group: str, core: Core, log: Audit, caller: Writer) -> Response:
    """Delete an empty group and its tokens (409 ``GROUP_NOT_EMPTY`` while it has deployments)."""
    with core.db.write() as session:
        row = groups.get_group(session, group)
        audit_events.group_changed(session, log, caller, "group.delete", row)
        groups.delete_group(session, row)
    return Response(status_code=204)


@router.post("/{group}/tokens", status_code=201, response_model=GroupTokenCreated)
def create_token(
    group: str, body: GroupTokenCreate, core: Core, log: Audit, caller: TokenWriter
) -> GroupTokenCreated:
    """A new onboarding token (``ax_dg_…``); the secret is in this response only."""
    with core.db.write() as session:
        scoped = groups.get_group(session, group, groups=caller.groups)
        row, secret = groups.create_group_token(
            session, scoped, name=body.name, created_by=caller.label
        )
        label = {"label": row.name}
        audit_events.group_changed(
            session, log, caller, "group.token.create", scoped, label, target=row.id
        )
        return GroupTokenCreated(**group_token_out(row).model_dump(), token=secret)


@router.get("/{group}/tokens", response_model=Page[GroupTokenOut])
def list_tokens(group: str, core: Core, caller: TokenReader) -> Page[GroupTokenOut]:
    with core.db.read() as session:
        rows = groups.list_group_tokens(
            session, groups.get_group(session, group, groups=caller.groups)
        )
        return Page(items=[group_token_out(r) for r in rows])


@router.delete("/{group}/tokens/{token_id}", response_model=GroupTokenOut)
def revoke_token(
    group: str, token_id: str, core: Core, log: Audit, caller: TokenWriter
) -> GroupTokenOut:
    """Revoke an onboarding token at once (idempotent); deployments it onboarded keep working."""
    with core.db.write() as session:
        scoped = groups.get_group(session, group, groups=caller.groups)
        row = groups.revoke_group_token(session, scoped, token_id)
        label = {"label": row.name}
        audit_events.group_changed(
            session, log, caller, "group.token.revoke", scoped, label, target=row.id
        )
        return group_token_out(row)
