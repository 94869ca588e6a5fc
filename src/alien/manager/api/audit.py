"""``/v1/audit``: the sealed audit trail (admin, operator), oldest first, paged by ``seq``;
``/v1/audit/public-key`` (public) and ``/v1/audit/head`` to verify it; ``/v1/customer/audit``:
one deployment's records, for its customer (the deployment's own token).

Records are answered exactly as sealed (:class:`alien.protocol.audit.AuditRecord`), hash and
signature included, so whoever reads them can verify the chain."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from alien.manager.api.deps import Core, require
from alien.manager.auth import Action, Principal
from alien.manager.ids import has_prefix
from alien.manager.schemas import MAX_SEQ, Page
from alien.manager.services import audit
from alien.manager.services.deployments import resolve_deployment
from alien.protocol.audit import AuditRecord, ChainHead

router = APIRouter(tags=["audit"])
Auditor = Annotated[Principal, Depends(require(Action.AUDIT_READ))]
CustomerAuditor = Annotated[Principal, Depends(require(Action.CUSTOMER_AUDIT_READ))]
PublicKeyReader = Annotated[None, Depends(require(Action.AUDIT_PUBLIC_KEY))]


@router.get("/v1/audit", response_model=Page[AuditRecord])
def list_audit(
    core: Core,
    caller: Auditor,
    action: Annotated[
        str | None, Query(max_length=128, description="exact action, or a prefix ending in '.'")
    ] = None,
    deployment: Annotated[
        str | None, Query(description="deployment id, group/name or name")
    ] = None,
    target: Annotated[str | None, Query(max_length=512, description="e.g. a dbg_… id")] = None,
    actor: Annotated[str | None, Query(max_length=128, description="an actor's id")] = None,
    session_id: Annotated[
        str | None,
        Query(
            alias="session",
            max_length=40,
            description="a dbg_… session: its own events and the requests it proxied",
        ),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="only records with a larger seq")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
) -> Page[AuditRecord]:
    """``action=debug.`` (a trailing dot) matches every action under that prefix."""
    with core.db.read() as session:
        deployment_id = deployment
        if deployment is not None and not has_prefix(deployment, "dep"):
            deployment_id = resolve_deployment(session, deployment).id  # ids of gone ones work
        records = audit.list_records(
            session,
            audit.AuditFilter(
                action=action,
                deployment=deployment_id,
                target=target,
                actor=actor,
                subject=session_id,
                after=after,
                limit=limit,
            ),
        )
        return Page(items=records)


class PublicKeyOut(BaseModel):
    """The manager's audit signing key, public half: what ``alien audit verify`` and
    ``alien-deploy audit --verify`` check signatures with. Pin it (``--public-key``) to detect
    a manager that re-signed its log with another key."""

    algorithm: Literal["ed25519"] = "ed25519"
    key_id: str = Field(description="the records' key_id: first 16 hex of sha256(raw key)")
    public_key: str = Field(description="PEM (SubjectPublicKeyInfo)")


@router.get("/v1/audit/public-key", response_model=PublicKeyOut)
def audit_public_key(core: Core, _: PublicKeyReader) -> PublicKeyOut:
    """Public: anyone may verify the trail."""
    verifier = audit.load_signer(core.settings.data_dir).verifier
    return PublicKeyOut(key_id=verifier.key_id, public_key=verifier.to_pem().decode("ascii"))


@router.get("/v1/audit/head", response_model=ChainHead)
def audit_head(core: Core, caller: Auditor) -> ChainHead:
    """The newest record as the chain's head (``seq`` 0 for an empty trail). Keep it elsewhere
    and pass it to a later verification: a log cut short is then detected too."""
    with core.db.read() as session:
        return audit.head(session)


@router.get("/v1/customer/audit", response_model=Page[AuditRecord])
def customer_audit(
    core: Core,
    caller: CustomerAuditor,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="only records with a larger seq")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = audit.MAX_PAGE,
) -> Page[AuditRecord]:
    """The caller's deployment's records, and nothing about any other deployment: a chain of
    their own (``deployment_seq``, ``deployment_prev_hash``) that verifies with the public key
    alone (:func:`alien.protocol.audit.verify_deployment_chain`)."""
    assert caller.deployment_id is not None
    query = audit.AuditFilter(deployment=caller.deployment_id, after=after, limit=limit)
    with core.db.read() as session:
        return Page(items=audit.list_records(session, query))
