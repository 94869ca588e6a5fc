"""The customer's policy: ``/v1/customer/policy`` (the deployment's own token) and the vendor's
read-only view of the effective policy, ``/v1/policies/{ref}``.

``PATCH /v1/customer/policy`` changes only the fields it names (``null`` clears a limit). A
change of the access switch takes effect before the answer: switched off, live debug sessions
are revoked (their tunnels drop), running commands cancelled, new releases held; switched on,
the held release is delivered and pending commands handed out.

``POST /v1/customer-credentials`` gives a push-model deployment (no agent, hence no token) the
one deployment token its customer governs it with; it is refused for a deployment that has one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import Conflict
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.auth import Action, Principal, authorize
from alien.manager.commands.center import center_of
from alien.manager.core import ManagerCore
from alien.manager.models import Deployment, DeploymentToken
from alien.manager.schemas import Reference
from alien.manager.schemas import Request as RequestBody
from alien.manager.services import audit, deployment_tokens, policy, policy_access
from alien.manager.services.audit import AuditLog
from alien.manager.services.debug_sessions import session_key
from alien.manager.services.deployments import own_deployment, resolve_deployment
from alien.manager.services.policy_effective import (
    CustomerDebugMode,
    CustomerPolicyView,
    EffectivePolicy,
)

router = APIRouter(tags=["access governance"])
CustomerReader = Annotated[Principal, Depends(require(Action.CUSTOMER_POLICY_READ))]
CustomerWriter = Annotated[Principal, Depends(require(Action.CUSTOMER_POLICY_WRITE))]
VendorReader = Annotated[Principal, Depends(require(Action.DEBUG_POLICY_READ))]
Issuer = Annotated[Principal, Depends(require(Action.CUSTOMER_CREDENTIALS_ISSUE))]

Names = list[Annotated[str, Field(min_length=1, max_length=255)]]


class CustomerPolicyIn(RequestBody):
    """Only the fields given are changed; ``null`` for a list or the TTL removes that limit."""

    access: bool | None = Field(default=None, description="false: suspend ALL vendor access")
    debug: CustomerDebugMode | None = None
    max_ttl_seconds: int | None = Field(default=None, ge=1)
    channels: Names | None = Field(default=None, max_length=policy.MAX_LIST)
    egress_allow: Names | None = Field(
        default=None, max_length=policy.MAX_LIST, description="host[:port] or *.domain"
    )
    commands: Names | None = Field(
        default=None, max_length=policy.MAX_LIST, description="null: every command"
    )
    command_approval: bool | None = None


class CustomerPolicyOut(BaseModel):
    deployment_id: str
    access: bool
    debug: CustomerDebugMode
    max_ttl_seconds: int | None
    channels: list[str] | None
    egress_allow: list[str] | None
    commands: list[str] | None
    command_approval: bool
    default: bool = Field(description="never set: these defaults restrict nothing")
    updated_at: datetime | None
    updated_by: str | None
    held_release: str | None = Field(description="sent while access was off; delivered on")


class EffectivePolicyOut(BaseModel):
    """What is enforced: the vendor's debug policy narrowed by the customer's."""

    access: bool
    debug: str = Field(description="allowed | approval_required | forbidden")
    approvers: list[str] = Field(description="who must approve a debug session")
    max_ttl_seconds: int
    channels: list[str]
    egress_allow: list[str] | None
    commands: list[str] | None
    command_approvers: list[str]


class PolicyOut(BaseModel):
    deployment_id: str
    customer: CustomerPolicyOut
    effective: EffectivePolicyOut


class CustomerCredentialsIn(RequestBody):
    deployment: Reference


class CustomerCredentialsOut(BaseModel):
    deployment_id: str
    token: str = Field(description="ax_dep_…: shown only in this response")


def _customer_out(view: CustomerPolicyView) -> CustomerPolicyOut:
    return CustomerPolicyOut(
        deployment_id=view.deployment_id,
        **policy.policy_details(view),
        default=not view.stored,
        updated_at=view.updated_at,
        updated_by=view.updated_by,
        held_release=view.held_release,
    )


def _effective_out(view: EffectivePolicy) -> EffectivePolicyOut:
    return EffectivePolicyOut(
        access=view.access,
        debug=view.mode.value,
        approvers=[p.value for p in view.approvers],
        max_ttl_seconds=view.max_ttl_seconds,
        channels=list(view.channels),
        egress_allow=list(view.egress_allow) if view.egress_allow is not None else None,
        commands=list(view.commands) if view.commands is not None else None,
        command_approvers=[p.value for p in view.command_approvers],
    )


def _policy_out(session: Session, dep: Deployment) -> PolicyOut:
    return PolicyOut(
        deployment_id=dep.id,
        customer=_customer_out(policy.get_customer_policy(session, dep.id)),
        effective=_effective_out(policy.effective_policy(session, dep)),
    )


@router.get("/v1/customer/policy", response_model=PolicyOut)
def get_customer_policy(core: Core, caller: CustomerReader) -> PolicyOut:
    """The customer's policy of the caller's deployment, and the effective policy."""
    with core.db.read() as session:
        return _policy_out(session, own_deployment(session, caller))


@router.patch("/v1/customer/policy", response_model=PolicyOut)
async def set_customer_policy(
    body: CustomerPolicyIn, request: Request, core: Core, log: Audit, caller: CustomerWriter
) -> PolicyOut:
    """Change the customer's policy (only with the deployment's own token)."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for flag in ("access", "debug", "command_approval"):
        if flag in changes and changes[flag] is None:
            del changes[flag]  # these have no "no limit": null leaves them as they are
    out, effects = await _change(core, log, caller, changes)
    await _publish(request, core, caller, effects)
    return out


async def _change(
    core: ManagerCore, log: AuditLog, caller: Principal, changes: dict[str, Any]
) -> tuple[PolicyOut, policy_access.AccessEffects]:
    def write() -> tuple[PolicyOut, policy_access.AccessEffects]:
        with core.db.write() as session:
            dep = own_deployment(session, caller)
            change = policy.set_customer_policy(session, log, caller, dep.id, changes)
            effects = policy_access.apply_change(session, log, caller, change)
            return _policy_out(session, dep), effects

    return await run_in_threadpool(write)


async def _publish(
    request: Request, core: ManagerCore, caller: Principal, effects: policy_access.AccessEffects
) -> None:
    """After the commit: drop revoked tunnels, stop or release commands, wake the agent."""
    core.hub.publish(*(session_key(s) for s in effects.revoked_sessions))
    center = center_of(request)
    actor = audit.actor_of(caller)
    if effects.suspended:
        await center.suspend(effects.deployment_id, actor, policy_access.SUSPENDED_REASON)
    if effects.resumed:
        await center.resume(effects.deployment_id)
    if effects.released is not None:
        core.deployments_changed([effects.deployment_id])


@router.get("/v1/policies/{ref:path}", response_model=PolicyOut)
def get_policy(ref: str, core: Core, caller: VendorReader) -> PolicyOut:
    """The vendor's view: the customer's policy of a deployment and what is enforced."""
    with core.db.read() as session:
        dep = resolve_deployment(session, ref, groups=caller.groups)
        authorize(caller, Action.DEBUG_POLICY_READ, deployments=[dep.id])
        return _policy_out(session, dep)


@router.post("/v1/customer-credentials", status_code=201, response_model=CustomerCredentialsOut)
def issue_customer_credentials(
    body: CustomerCredentialsIn, core: Core, log: Audit, caller: Issuer
) -> CustomerCredentialsOut:
    """The deployment token of a push-model deployment, for its customer (once).

    409 ``HAS_CREDENTIALS`` when the deployment already has a token (an agent's, or one issued
    before): the vendor can never mint a second credential to speak for a customer."""
    with core.db.write() as session:
        dep = resolve_deployment(session, body.deployment, field="deployment", groups=caller.groups)
        authorize(caller, Action.CUSTOMER_CREDENTIALS_ISSUE, deployments=[dep.id])
        existing = session.scalar(
            select(DeploymentToken.id).where(DeploymentToken.deployment_id == dep.id).limit(1)
        )
        if existing is not None:
            raise Conflict(
                f"deployment {body.deployment!r} already has its credentials",
                field="deployment",
                code="HAS_CREDENTIALS",
            )
        token = deployment_tokens.issue_for_customer(session, log, caller, dep.id)
        return CustomerCredentialsOut(deployment_id=dep.id, token=token)
