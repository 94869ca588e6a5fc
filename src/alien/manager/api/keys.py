"""``/v1/api-keys``: vendor API keys (unscoped admin only), each with a role and optionally
confined to some deployment groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from alien.manager import audit_events
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.api.views import key_out
from alien.manager.auth import Action, Principal
from alien.manager.models import ApiKey
from alien.manager.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Page
from alien.manager.services import keys
from alien.manager.services.debug_sessions import session_key
from alien.manager.services.groups import get_group

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])
Admin = Annotated[Principal, Depends(require(Action.KEYS_MANAGE))]


@router.post("", status_code=201, response_model=ApiKeyCreated)
def create_key(body: ApiKeyCreate, core: Core, log: Audit, caller: Admin) -> ApiKeyCreated:
    """Create a key with a role, confined to ``groups`` when given; the secret is in this
    response only."""
    with core.db.write() as session:
        groups = (
            None
            if body.groups is None
            else [get_group(session, ref, field=f"groups.{i}") for i, ref in enumerate(body.groups)]
        )
        key, secret = keys.create_key(
            session, name=body.name, role=body.role, created_by=caller.label, groups=groups
        )
        names = None if groups is None else sorted(g.name for g in groups)
        audit_events.key_created(session, log, caller, key, names)
        out = key_out(key, keys.key_groups(session, [key])[key.id])
        return ApiKeyCreated(**out.model_dump(), key=secret)


@router.get("", response_model=Page[ApiKeyOut])
def list_keys(core: Core, caller: Admin) -> Page[ApiKeyOut]:
    with core.db.read() as session:
        rows = keys.list_keys(session)
        groups = keys.key_groups(session, rows)
        return Page(items=[key_out(k, groups[k.id]) for k in rows])


@router.delete("/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: str, core: Core, log: Audit, caller: Admin) -> ApiKeyOut:
    """Revoke a key at once (idempotent): it is refused (401) from the next request on. The last
    active unscoped admin key cannot be revoked (409 ``LAST_ADMIN_KEY``)."""
    revoked: list[str] = []
    with core.db.write() as session:
        before = session.get(ApiKey, key_id)
        active = before is not None and before.revoked_at is None
        key = keys.revoke_key(session, key_id)
        if active:  # audited once, and the debug sessions it opened end with it
            revoked = audit_events.key_revoked(session, log, caller, key)
        out = key_out(key, keys.key_groups(session, [key])[key.id])
    core.hub.publish(*(session_key(s) for s in revoked))
    return out
