"""ORM rows → response bodies, kept apart so every route renders a thing the same way."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy.orm import Session

from alien.manager.agents import AgentRegistry
from alien.manager.auth import Principal, Role
from alien.manager.models import ApiKey, Deployment, Group, GroupToken, Release
from alien.manager.schemas import (
    ApiKeyGroupOut,
    ApiKeyOut,
    ConnectedAgentOut,
    DeploymentOut,
    GroupOut,
    GroupTokenOut,
    RefusedAgentOut,
    ReleaseDetail,
    ReleaseOut,
)
from alien.manager.services.deployments import assigned_deployments, group_names, references
from alien.protocol.deployment import DeploymentState


def key_out(key: ApiKey, groups: list[Group] | None) -> ApiKeyOut:
    """``groups``: the key's groups when it is scoped (see ``services.keys.key_groups``)."""
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        role=Role(key.role),
        groups=None if groups is None else [ApiKeyGroupOut(id=g.id, name=g.name) for g in groups],
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
    )


def group_out(group: Group, deployment_count: int) -> GroupOut:
    return GroupOut(
        id=group.id,
        name=group.name,
        description=group.description,
        created_at=group.created_at,
        deployment_count=deployment_count,
    )


def group_token_out(row: GroupToken) -> GroupTokenOut:
    return GroupTokenOut.model_validate(row, from_attributes=True)


def deployments_out(
    session: Session, deployments: list[Deployment], agents: AgentRegistry
) -> list[DeploymentOut]:
    names = group_names(session, {d.group_id for d in deployments})
    return [
        DeploymentOut(
            id=d.id,
            name=d.name,
            group_id=d.group_id,
            group=names.get(d.group_id, ""),
            platform=d.platform,
            state=DeploymentState(d.state),
            provisioned=d.provisioned,
            desired_release=d.desired_release_id,
            current_release=d.current_release_id,
            target_release=d.target_release_id,
            last_good_release=d.last_good_release_id,
            failed_release=d.failed_release_id,
            error=d.error,
            **_presence(agents, d.id),
            last_heartbeat_at=d.last_heartbeat_at,
            agent_version=d.agent_version,
            status_detail=d.status_detail,
            metadata=d.deployment_metadata,
            created_at=d.created_at,
            updated_at=d.updated_at,
        )
        for d in deployments
    ]


def _presence(agents: AgentRegistry, deployment_id: str) -> dict[str, Any]:
    """``connected``, ``agent`` and ``agent_conflict`` of a deployment, from this process."""
    agent = agents.connected_agent(deployment_id)
    refused = agents.refused(deployment_id)
    return {
        "connected": agent is not None,
        "agent": ConnectedAgentOut(**dataclasses.asdict(agent)) if agent else None,
        "agent_conflict": RefusedAgentOut(**dataclasses.asdict(refused)) if refused else None,
    }


def deployment_out(session: Session, dep: Deployment, agents: AgentRegistry) -> DeploymentOut:
    return deployments_out(session, [dep], agents)[0]


def release_out(session: Session, release: Release, caller: Principal) -> ReleaseOut:
    return ReleaseOut(**_release_fields(session, release, caller))


def release_detail(session: Session, release: Release, caller: Principal) -> ReleaseDetail:
    return ReleaseDetail(
        **_release_fields(session, release, caller), manifest=json.loads(release.manifest)
    )


def _release_fields(session: Session, release: Release, caller: Principal) -> dict[str, object]:
    """The release as ``caller`` may see it. One release can go to deployments of several
    groups (an unscoped key may name them all), and a scoped key or a deployment token that
    reads it must not learn of the other groups' deployments: ``deployments`` and a named
    ``targets`` list keep only those the caller may see."""
    assigned = assigned_deployments(session, release.id)
    visible = [d for d in assigned if caller.sees_deployment(d)]
    return {
        "id": release.id,
        "stack_name": release.stack_name,
        "manifest_digest": release.manifest_digest,
        "package_digest": release.package_digest,
        "package_size": release.package_size,
        "targets": _visible_targets(session, release.targets, visible, caller),
        "deployments": visible,
        "description": release.description,
        "created_at": release.created_at,
        "created_by": release.created_by,
    }


def _visible_targets(
    session: Session, targets: dict[str, Any], visible: list[str], caller: Principal
) -> dict[str, Any]:
    """``targets`` as given, but a list of named deployments keeps only the references that
    address one of ``visible`` (the release's deployments the caller may see). Matched against
    those, never resolved among all deployments: a name elsewhere is another group's business.
    A target a caller may see can thus drop out after its group was renamed; it is still in
    ``deployments``."""
    if targets.get("type") != "deployments" or caller.sees_every_deployment:
        return targets
    known = references(session, visible)
    return {**targets, "deployments": [ref for ref in targets["deployments"] if ref in known]}
