"""API keys: create (with a role, optionally scoped to deployment groups), list, revoke, and the
first admin key of a fresh manager."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alien.errors import Conflict, NotFound, ValidationError
from alien.manager import tokens
from alien.manager.auth import Role
from alien.manager.db import Database, utcnow
from alien.manager.models import ApiKey, ApiKeyGroup, Group
from alien.manager.tokens import TokenKind

ADMIN_KEY_ENV = "ALIEN_ADMIN_KEY"


def _key_id(lookup: str) -> str:
    # The id is derived from the public lookup part so an installed key (ALIEN_ADMIN_KEY) gets the
    # same id on every start, and a key is recognisable in audit columns without its secret.
    return f"key_{lookup}"


def create_key(
    session: Session,
    *,
    name: str,
    role: Role,
    created_by: str | None,
    groups: Sequence[Group] | None = None,
) -> tuple[ApiKey, str]:
    """A new key; the returned string is the secret, to be shown once and never stored.

    ``groups`` confines the key to those deployment groups (``None``: every group). An empty
    list is refused: a key that may see nothing is a mistake, not a setting.
    """
    if groups is not None and not groups:
        raise ValidationError(
            "give at least one group, or none to reach every group", field="groups"
        )
    issued = tokens.issue(TokenKind.API_KEY)
    key = ApiKey(
        id=_key_id(issued.lookup),
        name=name,
        role=role.value,
        lookup=issued.lookup,
        token_hash=issued.hash,
        created_at=utcnow(),
        created_by=created_by,
        group_scoped=groups is not None,
    )
    session.add(key)
    session.flush()
    for group_id in sorted({g.id for g in groups or ()}):
        session.add(ApiKeyGroup(api_key_id=key.id, group_id=group_id))
    session.flush()
    return key, issued.value


def key_groups(session: Session, keys: Sequence[ApiKey]) -> dict[str, list[Group] | None]:
    """Each key's groups by key id, sorted by name (``None`` for a key that is not scoped)."""
    scoped = [k.id for k in keys if k.group_scoped]
    found: dict[str, list[Group] | None] = {k.id: [] if k.group_scoped else None for k in keys}
    if scoped:
        rows = session.execute(
            select(ApiKeyGroup.api_key_id, Group)
            .join(Group, Group.id == ApiKeyGroup.group_id)
            .where(ApiKeyGroup.api_key_id.in_(scoped))
            .order_by(Group.name)
        )
        for key_id, group in rows:
            members = found[key_id]
            assert members is not None
            members.append(group)
    return found


def install_admin_key(session: Session, value: str) -> bool:
    """Make the given ``ax_key_…`` an admin key (idempotent); ``True`` if it was added now."""
    parsed = tokens.parse_strict(value, TokenKind.API_KEY, field=ADMIN_KEY_ENV)
    existing = session.scalar(select(ApiKey).where(ApiKey.lookup == parsed.lookup))
    if existing is not None:
        if not tokens.matches(value, existing.token_hash):
            raise Conflict(
                f"{ADMIN_KEY_ENV} collides with a different stored key", field=ADMIN_KEY_ENV
            )
        return False
    session.add(
        ApiKey(
            id=_key_id(parsed.lookup),
            name="admin (from ALIEN_ADMIN_KEY)",
            role=Role.ADMIN.value,
            lookup=parsed.lookup,
            token_hash=tokens.hash_token(value),
            created_at=utcnow(),
        )
    )
    session.flush()
    return True


def ensure_admin_key(db: Database, configured: str | None) -> str | None:
    """On a fresh manager, create the first admin key and return its secret (to print once).

    With ``configured`` (``ALIEN_ADMIN_KEY``) that key is installed instead and nothing is
    returned; on later starts, with keys already present, nothing happens.
    """
    with db.write() as session:
        if configured:
            install_admin_key(session, configured)
            return None
        if session.scalar(select(func.count()).select_from(ApiKey)):
            return None
        _, secret = create_key(session, name="admin", role=Role.ADMIN, created_by=None)
        return secret


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key. The last active admin key cannot be revoked: that would lock everyone out."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id!r}", field="key_id")
    if key.revoked_at is not None:
        return key
    if key.role == Role.ADMIN.value and not key.group_scoped:
        # Only an unscoped admin may manage keys: revoking the last one would lock everyone out.
        admins = session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.role == Role.ADMIN.value,
                ApiKey.revoked_at.is_(None),
                ApiKey.group_scoped.is_(False),
            )
        )
        if admins == 1:
            raise Conflict(
                "cannot revoke the last active admin key", field="key_id", code="LAST_ADMIN_KEY"
            )
    key.revoked_at = utcnow()
    return key
