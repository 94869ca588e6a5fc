"""Audit records of management actions outside debugging and commands: API keys, releases,
deleted deployments, and refused attempts.

Each helper appends in the caller's write transaction, so the trail and the change it describes
commit together. Releases get one global record (what was released, to whom) plus one record per
target deployment (delivered or held): a customer verifying their deployment's chain sees every
release the vendor sent them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from alien.errors import AlienError
from alien.manager.auth import Principal
from alien.manager.models import ApiKey, Deployment, Group, Release
from alien.manager.services import debug_sessions
from alien.manager.services.audit import AuditEntry, AuditLog, actor_of
from alien.protocol.audit import Outcome


def key_created(
    session: Session, log: AuditLog, caller: Principal, key: ApiKey, groups: list[str] | None
) -> None:
    """``groups``: the names of the groups the key is confined to, ``None`` for every group."""
    details = {"name": key.name, "role": key.role, "groups": groups}
    _succeeded(session, log, caller, "key.create", key.id, details)


def group_changed(
    session: Session,
    log: AuditLog,
    caller: Principal,
    action: str,
    group: Group,
    details: dict[str, Any] | None = None,
    *,
    target: str | None = None,
) -> None:
    """A group made, renamed or deleted (``group.create``, ``group.update``, ``group.delete``;
    the target is the group), or one of its onboarding tokens issued or revoked
    (``group.token.create``, ``group.token.revoke``; the target is the token's id): who may
    onboard deployments where is the vendor's business too."""
    details = {"group_id": group.id, "name": group.name, **(details or {})}
    _succeeded(session, log, caller, action, target or group.id, details)


def onboarded(session: Session, log: AuditLog, caller: Principal, dep: Deployment) -> None:
    """A deployment came to be (``deployment.onboard``, by its group token): the first record
    of the deployment's own chain, so the customer's trail starts where the deployment did."""
    _deployment_event(session, log, caller, "deployment.onboard", dep)


def key_revoked(session: Session, log: AuditLog, caller: Principal, key: ApiKey) -> list[str]:
    """Audit a key's revocation and revoke the live debug sessions it opened; returns their ids
    (publish them after the commit: their tunnels drop within a second)."""
    revoked = debug_sessions.revoke_live(
        session, log, caller, reason=f"the API key {key.id} was revoked", opened_by=key.id
    )
    details = {"role": key.role, "revoked_sessions": revoked}
    _succeeded(session, log, caller, "key.revoke", key.id, details)
    return revoked


def deployment_deleted(
    session: Session, log: AuditLog, caller: Principal, dep: Deployment, revoked: list[str]
) -> None:
    """The vendor (an API key) or the customer (the deployment's own token: ``alien-deploy down
    --platform aws``) made the manager forget a deployment. In the deployment's own chain too,
    so the customer's verified trail ends with who cut it off."""
    _deployment_event(session, log, caller, "deployment.delete", dep, {"revoked_sessions": revoked})


def _deployment_event(
    session: Session,
    log: AuditLog,
    caller: Principal,
    action: str,
    dep: Deployment,
    details: dict[str, Any] | None = None,
) -> None:
    """A record in ``dep``'s own chain, its target the deployment."""
    details = {"name": dep.name, "platform": dep.platform, **(details or {})}
    _succeeded(session, log, caller, action, dep.id, details, deployment=dep.id)


def _succeeded(
    session: Session,
    log: AuditLog,
    caller: Principal,
    action: str,
    target: str,
    details: dict[str, Any],
    *,
    deployment: str | None = None,
) -> None:
    log.record(
        session,
        AuditEntry(
            actor=actor_of(caller),
            action=action,
            outcome=Outcome.SUCCEEDED,
            deployment=deployment,
            target=target,
            details=details,
        ),
    )


def release_created(
    session: Session,
    log: AuditLog,
    caller: Principal,
    release: Release,
    delivered: Iterable[str],
    held: Iterable[str],
) -> None:
    """``delivered``: deployments whose desired release it became; ``held``: deployments whose
    customer suspended access (it waits for them)."""
    actor = actor_of(caller)
    delivered, held = sorted(delivered), sorted(held)
    summary = {
        "stack": release.stack_name,
        "manifest_digest": release.manifest_digest,
        "package_digest": release.package_digest,
    }
    entries = [
        AuditEntry(
            actor=actor,
            action="release.create",
            outcome=Outcome.SUCCEEDED,
            target=release.id,
            details={
                **summary,
                "targets": release.targets,
                "deployments": len(delivered) + len(held),
                "held": len(held),
            },
        )
    ]
    assigned = {**summary, "targets": _assigned_targets(release.targets)}
    entries += [
        AuditEntry(
            actor=actor,
            action="release.assign",
            outcome=Outcome.SUCCEEDED,
            deployment=dep,
            target=release.id,
            details={**assigned, "held": dep in held},
        )
        for dep in [*delivered, *held]
    ]
    log.append(session, entries)


def _assigned_targets(targets: dict[str, Any]) -> dict[str, Any]:
    """The targets as one deployment's record states them: a list of named deployments is left
    out (the record names its deployment), for its customer reads that record and the other
    deployments a release went to are other customers' business."""
    return {"type": targets["type"]} if targets.get("type") == "deployments" else targets


def denied(
    session: Session,
    log: AuditLog,
    caller: Principal,
    action: str,
    error: AlienError,
    *,
    deployment: str | None = None,
    target: str | None = None,
) -> None:
    """A refused attempt by an authenticated caller (authorisation or policy said no)."""
    log.record(
        session,
        AuditEntry(
            actor=actor_of(caller),
            action="access.denied",
            outcome=Outcome.DENIED,
            deployment=deployment,
            target=target,
            details={"attempted": action, "code": error.code, "message": error.message},
        ),
    )
