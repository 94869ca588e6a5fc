"""Deployments: onboarding, addressing, listing, status changes, deletion.

A deployment's lifecycle fields are the :class:`~alien.protocol.deployment.DeploymentStatus` of
the protocol layer, stored one column each; every change goes through the protocol's pure
``apply`` so the manager can never store a status the state machine forbids.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from alien.errors import Conflict, NotFound
from alien.manager import tokens
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.ids import has_prefix, new_id
from alien.manager.models import (
    Deployment,
    DeploymentToken,
    Group,
    GroupToken,
    Release,
    ReleaseTarget,
)
from alien.manager.tokens import TokenKind
from alien.protocol.deployment import (
    DeploymentEvent,
    DeploymentState,
    DeploymentStatus,
    DesiredReleaseSet,
    apply,
)

_DEAD_STATES = frozenset({DeploymentState.DELETING.value, DeploymentState.DELETED.value})


def status_of(dep: Deployment) -> DeploymentStatus:
    return DeploymentStatus(
        state=DeploymentState(dep.state),
        provisioned=dep.provisioned,
        current_release=dep.current_release_id,
        desired_release=dep.desired_release_id,
        target_release=dep.target_release_id,
        last_good_release=dep.last_good_release_id,
        failed_release=dep.failed_release_id,
        error=dep.error,
    )


def _store_status(dep: Deployment, status: DeploymentStatus) -> None:
    dep.state = status.state.value
    dep.provisioned = status.provisioned
    dep.current_release_id = status.current_release
    dep.desired_release_id = status.desired_release
    dep.target_release_id = status.target_release
    dep.last_good_release_id = status.last_good_release
    dep.failed_release_id = status.failed_release
    dep.error = status.error
    dep.updated_at = utcnow()


def apply_event(dep: Deployment, event: DeploymentEvent) -> DeploymentStatus:
    """Apply a lifecycle event to the stored status (``IllegalTransition`` if refused)."""
    status = apply(status_of(dep), event)
    _store_status(dep, status)
    return status


def is_alive(dep: Deployment) -> bool:
    """Whether releases may still be sent to it (not being or already torn down)."""
    return dep.state not in _DEAD_STATES


def set_desired_release(session: Session, dep: Deployment, release_id: str) -> None:
    apply_event(dep, DesiredReleaseSet(release=release_id))
    if session.get(ReleaseTarget, (release_id, dep.id)) is None:
        session.add(
            ReleaseTarget(release_id=release_id, deployment_id=dep.id, assigned_at=utcnow())
        )


def resolve_deployment(
    session: Session,
    ref: str,
    *,
    field: str = "deployment",
    for_update: bool = False,
    groups: Collection[str] | None = None,
) -> Deployment:
    """A deployment by id (``dep_…``), ``group/name``, or bare name when that is unique.

    ``for_update`` locks the row (PostgreSQL ``FOR UPDATE``; SQLite write transactions are
    already exclusive) so a status change computed from it cannot overwrite a concurrent one.
    ``groups`` (a group-scoped caller's, see ``Principal.groups``) limits the search to those
    groups: a deployment elsewhere is "no deployment", and a bare name is ambiguous only among
    the deployments the caller may see.
    """
    if has_prefix(ref, "dep"):
        dep = session.get(Deployment, ref, with_for_update=for_update, populate_existing=for_update)
        if dep is None or (groups is not None and dep.group_id not in groups):
            raise NotFound(f"no deployment {ref!r}", field=field)
        return dep
    group_name, slash, name = ref.rpartition("/")
    query = select(Deployment).where(Deployment.name == name)
    if groups is not None:
        query = query.where(Deployment.group_id.in_(groups))
    if slash:
        query = query.join(Group, Group.id == Deployment.group_id).where(Group.name == group_name)
    if for_update:
        query = query.with_for_update(of=Deployment).execution_options(populate_existing=True)
    found = list(session.scalars(query.limit(2)))
    if not found:
        raise NotFound(f"no deployment {ref!r}", field=field)
    if len(found) > 1:
        raise Conflict(
            f"more than one deployment is named {name!r}; use <group>/{name} or its id",
            field=field,
            code="AMBIGUOUS_NAME",
        )
    return found[0]


def own_deployment(
    session: Session, caller: Principal, ref: str | None = None, *, field: str = "deployment"
) -> Deployment:
    """The deployment a token speaks for (a deployment token's), when ``ref`` is absent or
    addresses it (its id, ``group/name`` or bare name); else the 404 of a deployment that does
    not exist. Decided without looking ``ref`` up among all deployments: whether another
    deployment of that name exists (or several do) is another customer's business."""
    missing = NotFound(f"no deployment {ref or caller.deployment_id!r}", field=field)
    own = session.get(Deployment, caller.deployment_id) if caller.deployment_id else None
    if own is None or (ref and ref not in references(session, [own.id])):
        raise missing
    return own


def visible_deployment(
    session: Session, caller: Principal, ref: str, *, field: str = "deployment"
) -> Deployment:
    """``ref`` resolved among the deployments ``caller`` may see: an API key's groups' (every
    one for an unscoped key), any other token's own (:func:`own_deployment`). Whatever lies
    outside is "no deployment", the 404 of one that does not exist, never a 403 or a 409 that
    would tell the caller it exists elsewhere."""
    if caller.kind is TokenKind.API_KEY:
        return resolve_deployment(session, ref, field=field, groups=caller.groups)
    return own_deployment(session, caller, ref, field=field)


def list_deployments(
    session: Session,
    *,
    group: Group | None = None,
    state: DeploymentState | None = None,
    ids: list[str] | None = None,
    for_update: bool = False,
    groups: Collection[str] | None = None,
) -> list[Deployment]:
    """Deployments in creation order, which is also the lock order with ``for_update``: every
    writer that locks several deployments locks them in this order, so none can deadlock.
    ``groups``: only those in these groups (a group-scoped caller's view)."""
    query = select(Deployment).order_by(Deployment.created_at, Deployment.id)
    if groups is not None:
        query = query.where(Deployment.group_id.in_(groups))
    if ids is not None:
        query = query.where(Deployment.id.in_(ids))
    if for_update:
        query = query.with_for_update(of=Deployment).execution_options(populate_existing=True)
    if group is not None:
        query = query.where(Deployment.group_id == group.id)
    if state is not None:
        query = query.where(Deployment.state == state.value)
    return list(session.scalars(query))


def group_names(session: Session, group_ids: set[str]) -> dict[str, str]:
    if not group_ids:
        return {}
    rows = session.execute(select(Group.id, Group.name).where(Group.id.in_(group_ids)))
    return {gid: name for gid, name in rows}


def onboard(
    session: Session,
    principal: Principal,
    *,
    name: str,
    platform: str,
    metadata: dict[str, Any],
) -> tuple[Deployment, str]:
    """Create a deployment in the group token's group and issue its token (returned once).

    A name already used in the group is refused unless that deployment was torn down
    (``deleted``), in which case the new one replaces it. The newest release aimed at every
    deployment or at this group becomes the new deployment's desired release, so an agent that
    onboards after a release was published still gets it.
    """
    assert principal.group_id is not None and principal.kind is TokenKind.GROUP
    now = utcnow()
    existing = session.scalar(
        select(Deployment).where(Deployment.group_id == principal.group_id, Deployment.name == name)
    )
    if existing is not None:
        if existing.state != DeploymentState.DELETED.value:
            raise Conflict(
                f"a deployment named {name!r} already exists in this group",
                field="name",
                code="NAME_TAKEN",
            )
        session.delete(existing)
        session.flush()
    dep = Deployment(
        id=new_id("dep"),
        group_id=principal.group_id,
        name=name,
        platform=platform,
        status_detail={},
        deployment_metadata=metadata,
        onboarded_with=principal.id,
        created_at=now,
    )
    _store_status(dep, DeploymentStatus())
    session.add(dep)
    issued = tokens.issue(TokenKind.DEPLOYMENT)
    session.add(
        DeploymentToken(
            id=new_id("dtk"),
            deployment_id=dep.id,
            lookup=issued.lookup,
            token_hash=issued.hash,
            created_at=now,
        )
    )
    gtok = session.get(GroupToken, principal.id)
    if gtok is not None:
        gtok.last_used_at = now
        gtok.use_count += 1
    session.flush()
    latest = newest_release_for(session, dep.group_id)
    if latest is not None:
        set_desired_release(session, dep, latest.id)
    session.flush()
    return dep, issued.value


def newest_release_for(session: Session, group_id: str) -> Release | None:
    """The release a deployment onboarding into ``group_id`` now would get: the newest aimed at
    every deployment or at that group."""
    return session.scalar(
        select(Release)
        .where(
            or_(
                Release.target_type == "all",
                (Release.target_type == "group") & (Release.target_group_id == group_id),
            )
        )
        .order_by(Release.created_at.desc(), Release.id.desc())
        .limit(1)
    )


def delete_deployment(session: Session, dep: Deployment) -> None:
    """Forget the deployment: its tokens stop working and its agent channel is closed.

    This removes the record only; tearing down what runs in the customer's environment is the
    agent's job (it reports ``delete_requested`` … ``deleted``).
    """
    session.execute(delete(Deployment).where(Deployment.id == dep.id))
    session.expunge(dep)


def record_heartbeat(session: Session, dep: Deployment) -> None:
    dep.last_heartbeat_at = utcnow()


def assigned_deployments(session: Session, release_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ReleaseTarget.deployment_id)
            .where(ReleaseTarget.release_id == release_id)
            .order_by(ReleaseTarget.deployment_id)
        )
    )


def references(session: Session, deployment_ids: Collection[str]) -> set[str]:
    """Every reference that addresses one of these deployments: its id, ``group/name`` and
    bare name (the forms :func:`resolve_deployment` takes)."""
    if not deployment_ids:
        return set()
    rows = session.execute(
        select(Deployment.id, Deployment.name, Group.name)
        .join(Group, Group.id == Deployment.group_id)
        .where(Deployment.id.in_(deployment_ids))
    )
    return {ref for dep_id, name, group in rows for ref in (dep_id, name, f"{group}/{name}")}


def is_assigned(session: Session, release_id: str, deployment_id: str) -> bool:
    return session.get(ReleaseTarget, (release_id, deployment_id)) is not None


def check_awaitable(
    session: Session, caller: Principal, dep: Deployment, release_id: str, *, field: str = "release"
) -> None:
    """Refuse a wait for ``release_id`` on ``dep`` that can never end matched or failed.

    Only an assigned release (a :class:`ReleaseTarget` row) can become a deployment's current or
    failed one, and rows are added only when a release is created (for the deployments it
    targets then) or when a deployment onboards (the newest release for its group) — both in the
    transaction that creates the release or the deployment. So once ``dep`` exists, a release
    not assigned to it never will be. Which refusal: one the caller may not see (see
    ``_visible_release`` in the releases API: assigned to a deployment it sees, or aimed at one
    of its groups) is the 404 of a release that does not exist; one it may see is a 409.
    """
    if is_assigned(session, release_id, dep.id):
        return
    release = session.get(Release, release_id)
    if release is None or not _sees_release(session, caller, release):
        raise NotFound(f"no release {release_id!r}", field=field)
    raise Conflict(
        f"release {release_id!r} is not assigned to this deployment, so it can never run there",
        field=field,
    )


def _sees_release(session: Session, caller: Principal, release: Release) -> bool:
    if caller.sees_every_deployment:
        return True
    if caller.groups is not None and release.target_group_id in caller.groups:
        return True
    return any(caller.sees_deployment(d) for d in assigned_deployments(session, release.id))
