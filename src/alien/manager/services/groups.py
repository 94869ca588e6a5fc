"""Deployment groups and their onboarding tokens."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alien.errors import Conflict, NotFound
from alien.manager import tokens
from alien.manager.db import utcnow
from alien.manager.ids import has_prefix, new_id
from alien.manager.models import Deployment, Group, GroupToken
from alien.manager.tokens import TokenKind


def get_group(
    session: Session, ref: str, *, field: str = "group", groups: Collection[str] | None = None
) -> Group:
    """A group by id (``grp_…``) or name; with ``groups`` (a group-scoped caller's), a group
    outside them is "no deployment group" too."""
    column = Group.id if has_prefix(ref, "grp") else Group.name
    group = session.scalar(select(Group).where(column == ref))
    if group is None or (groups is not None and group.id not in groups):
        raise NotFound(f"no deployment group {ref!r}", field=field)
    return group


def deployment_count(session: Session, group_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Deployment).where(Deployment.group_id == group_id)
        )
        or 0
    )


def list_groups(
    session: Session, *, groups: Collection[str] | None = None
) -> list[tuple[Group, int]]:
    """Groups by name with their deployment counts; ``groups``: only these ids."""
    counts = (
        select(Deployment.group_id, func.count().label("n"))
        .group_by(Deployment.group_id)
        .subquery()
    )
    query = (
        select(Group, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == Group.id)
        .order_by(Group.name)
    )
    if groups is not None:
        query = query.where(Group.id.in_(groups))
    rows = session.execute(query)
    return [(group, int(n)) for group, n in rows]


def _check_name_free(session: Session, name: str, *, except_id: str | None = None) -> None:
    clash = session.scalar(select(Group.id).where(Group.name == name))
    if clash is not None and clash != except_id:
        raise Conflict(f"a group named {name!r} already exists", field="name", code="NAME_TAKEN")


def create_group(session: Session, *, name: str, description: str | None) -> Group:
    _check_name_free(session, name)
    group = Group(id=new_id("grp"), name=name, description=description, created_at=utcnow())
    session.add(group)
    session.flush()
    return group


def update_group(
    session: Session, group: Group, *, name: str | None, description: str | None
) -> Group:
    if name is not None and name != group.name:
        _check_name_free(session, name, except_id=group.id)
        group.name = name
    if description is not None:
        group.description = description
    session.flush()
    return group


def delete_group(session: Session, group: Group) -> None:
    """Delete an empty group (its tokens go with it); a group with deployments is refused."""
    if deployment_count(session, group.id):
        raise Conflict(
            f"group {group.name!r} still has deployments; delete them first",
            field="group",
            code="GROUP_NOT_EMPTY",
        )
    session.delete(group)
    session.flush()


def create_group_token(
    session: Session, group: Group, *, name: str, created_by: str | None
) -> tuple[GroupToken, str]:
    issued = tokens.issue(TokenKind.GROUP)
    row = GroupToken(
        id=new_id("gtk"),
        group_id=group.id,
        name=name,
        lookup=issued.lookup,
        token_hash=issued.hash,
        created_at=utcnow(),
        created_by=created_by,
        use_count=0,
    )
    session.add(row)
    session.flush()
    return row, issued.value


def list_group_tokens(session: Session, group: Group) -> list[GroupToken]:
    return list(
        session.scalars(
            select(GroupToken)
            .where(GroupToken.group_id == group.id)
            .order_by(GroupToken.created_at, GroupToken.id)
        )
    )


def revoke_group_token(session: Session, group: Group, token_id: str) -> GroupToken:
    row = session.get(GroupToken, token_id)
    if row is None or row.group_id != group.id:
        raise NotFound(f"no token {token_id!r} in group {group.name!r}", field="token_id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
