"""Releases: a validated stack manifest plus an uploaded code package, sent to chosen deployments.

A release is immutable once created. Creating one validates the manifest with ``alien.stack``
(an invalid manifest is refused with 422 naming the field before any deployment sees it), checks
the package blob exists (for a group-scoped caller: was uploaded within its groups, see
:mod:`alien.manager.services.blobs`), resolves the targets, and sets each target's desired
release through the deployment state machine — all in one transaction, so either every target
gets it or none does.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict, Forbidden, NotFound, ValidationError
from alien.manager import audit_events
from alien.manager.auth import Principal
from alien.manager.blobs import BlobStore
from alien.manager.db import utcnow
from alien.manager.ids import new_id
from alien.manager.models import Deployment, Release, ReleaseTarget
from alien.manager.schemas import AllTargets, DeploymentTargets, GroupTargets, ReleaseCreate
from alien.manager.services import policy_access
from alien.manager.services.audit import AuditLog
from alien.manager.services.blobs import visible_blob
from alien.manager.services.deployments import (
    is_alive,
    list_deployments,
    resolve_deployment,
    set_desired_release,
)
from alien.manager.services.groups import get_group
from alien.protocol.agent_channel import DesiredRelease
from alien.stack.manifest import dump_manifest, manifest_digest, manifest_from_dict


def package_path(release_id: str) -> str:
    """Where an agent downloads the package, relative to the manager's base URL."""
    return f"/v1/releases/{release_id}/package"


def _validated_manifest(raw: dict[str, Any]) -> tuple[str, str, str]:
    """(stack name, canonical JSON, digest); errors name ``manifest.<field>``."""
    try:
        manifest = manifest_from_dict(raw)
    except AlienError as exc:
        exc.field = f"manifest.{exc.field}" if exc.field and exc.field != "manifest" else "manifest"
        raise
    return manifest.name, dump_manifest(manifest).decode("ascii"), manifest_digest(manifest)


def _resolve_targets(
    session: Session,
    targets: AllTargets | GroupTargets | DeploymentTargets,
    scope: Collection[str] | None,
) -> tuple[list[Deployment], str | None]:
    """The deployments to send the release to, and the group id for group targets.

    ``scope`` is a group-scoped caller's groups: it can name only deployments and groups in
    them (others are unknown to it), and never "all", which also reaches deployments that
    onboard later, anywhere.
    """
    if isinstance(targets, AllTargets):
        if scope is not None:
            raise Forbidden(
                "a key scoped to deployment groups may not release to all deployments",
                field="targets.type",
            )
        return [d for d in list_deployments(session, for_update=True) if is_alive(d)], None
    if isinstance(targets, GroupTargets):
        group = get_group(session, targets.group, field="targets.group", groups=scope)
        alive = [d for d in list_deployments(session, group=group, for_update=True) if is_alive(d)]
        return alive, group.id
    ids: dict[str, str] = {}  # deployment id -> the field that named it
    for index, ref in enumerate(targets.deployments):
        field = f"targets.deployments.{index}"
        try:
            ids.setdefault(resolve_deployment(session, ref, field=field, groups=scope).id, field)
        except NotFound as exc:
            raise ValidationError(exc.message, field=field, code="UNKNOWN_DEPLOYMENT") from None
    chosen = list_deployments(session, ids=list(ids), for_update=True)
    for dep in chosen:
        if not is_alive(dep):
            raise Conflict(
                f"deployment {dep.id} is {dep.state}; it takes no new releases", field=ids[dep.id]
            )
    return chosen, None


def create_release(
    session: Session,
    blobs: BlobStore,
    body: ReleaseCreate,
    principal: Principal,
    log: AuditLog | None = None,
) -> tuple[Release, list[str]]:
    """Store the release and assign it; returns it with the ids of the deployments it went to.

    With ``log`` the release is audited and a deployment whose customer suspended vendor access
    only records it as assigned (held: :mod:`alien.manager.services.policy_access`)."""
    stack_name, manifest_json, digest = _validated_manifest(body.manifest)
    blob = visible_blob(session, blobs, body.package_digest, principal.groups)
    if blob is None:
        raise ValidationError(
            "no uploaded package with that digest (upload it with POST /v1/blobs first)",
            field="package_digest",
            code="UNKNOWN_BLOB",
        )
    deployments, group_id = _resolve_targets(session, body.targets, principal.groups)
    release = Release(
        id=new_id("rel"),
        stack_name=stack_name,
        manifest=manifest_json,
        manifest_digest=digest,
        package_digest=blob.digest,
        package_size=blob.size,
        targets=body.targets.model_dump(mode="json"),
        target_type=body.targets.type,
        target_group_id=group_id,
        description=body.description,
        created_at=utcnow(),
        created_by=principal.label,
    )
    session.add(release)
    session.flush()
    if log is None:
        for dep in deployments:
            set_desired_release(session, dep, release.id)
        session.flush()
        return release, [d.id for d in deployments]
    delivered: list[str] = []
    held: list[str] = []
    for dep in deployments:
        sent = policy_access.assign_release(session, log, dep, release.id)
        (delivered if sent else held).append(dep.id)
    session.flush()
    audit_events.release_created(session, log, principal, release, delivered, held)
    return release, delivered


def get_release(session: Session, release_id: str, *, field: str = "release_id") -> Release:
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release {release_id!r}", field=field)
    return release


def list_releases(
    session: Session, *, limit: int, groups: Collection[str] | None = None
) -> list[Release]:
    """Newest first; ``groups`` (a group-scoped caller's): only releases sent to one of these
    groups or assigned to a deployment in one."""
    query = select(Release).order_by(Release.created_at.desc(), Release.id.desc()).limit(limit)
    if groups is not None:
        in_scope = (
            select(ReleaseTarget.release_id)
            .join(Deployment, Deployment.id == ReleaseTarget.deployment_id)
            .where(Deployment.group_id.in_(groups))
        )
        query = query.where(Release.target_group_id.in_(groups) | Release.id.in_(in_scope))
    return list(session.scalars(query))


def desired_release_message(release: Release) -> DesiredRelease:
    return DesiredRelease(
        release_id=release.id,
        manifest_digest=release.manifest_digest,
        package_digest=release.package_digest,
        package_size=release.package_size,
        package_url=package_path(release.id),
        manifest=json.loads(release.manifest),
    )
