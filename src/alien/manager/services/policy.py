"""The customer's policy of a deployment: stored, changed (by the customer only), and combined
with the vendor's into the effective policy every check uses.

The customer sets it with the deployment's own token (``alien-deploy policy set``), never the
vendor: the routes that change it accept nothing but that deployment's token. A change names only
the fields it changes; every change is audited with the whole resulting policy. What a change of
the access switch does to live sessions, running commands and releases is in
:mod:`alien.manager.services.policy_access`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from alien.errors import ValidationError
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.models import CustomerPolicy, DeploymentIdentity
from alien.manager.services import audit, debug_policies
from alien.manager.services.policy_effective import (
    CustomerDebugMode,
    CustomerPolicyView,
    EffectivePolicy,
    intersect,
    normalise_channel,
)
from alien.protocol.audit import Outcome
from alien.protocol.command_messages import validate_command_name
from alien.tunnel.forward import HostAllowlist

FIELDS = frozenset(
    {
        "access",
        "debug",
        "max_ttl_seconds",
        "channels",
        "egress_allow",
        "commands",
        "command_approval",
    }
)
MAX_LIST = 200


def get_customer_policy(session: Session, deployment_id: str) -> CustomerPolicyView:
    """The customer's policy (the defaults, which restrict nothing, when none was set)."""
    row = session.get(CustomerPolicy, deployment_id)
    if row is None:
        return CustomerPolicyView(deployment_id=deployment_id)
    return _view(row)


def effective_policy(session: Session, dep: DeploymentIdentity) -> EffectivePolicy:
    """The vendor's debug policy narrowed by the customer's: what is enforced."""
    return intersect(debug_policies.get_policy(session, dep), get_customer_policy(session, dep.id))


def access_suspended(session: Session, deployment_id: str) -> bool:
    """Whether the customer switched vendor access off for this deployment."""
    row = session.get(CustomerPolicy, deployment_id)
    return row is not None and not row.access


@dataclass(frozen=True)
class PolicyChange:
    """The result of :func:`set_customer_policy`: the new policy and whether the access switch
    moved (``suspended``: on → off, ``resumed``: off → on)."""

    before: CustomerPolicyView
    after: CustomerPolicyView
    changed: tuple[str, ...]

    @property
    def suspended(self) -> bool:
        return self.before.access and not self.after.access

    @property
    def resumed(self) -> bool:
        return not self.before.access and self.after.access


def set_customer_policy(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    deployment_id: str,
    changes: Mapping[str, Any],
) -> PolicyChange:
    """Apply ``changes`` (a subset of :data:`FIELDS`; ``None`` clears a limit) and audit it."""
    unknown = set(changes) - FIELDS
    if unknown:
        raise ValidationError(f"unknown policy field {sorted(unknown)[0]!r}", field="policy")
    values = {name: _validated(name, value) for name, value in changes.items()}
    before = get_customer_policy(session, deployment_id)
    row = session.get(CustomerPolicy, deployment_id, with_for_update=True)
    if row is None:
        row = CustomerPolicy(
            deployment_id=deployment_id,
            access=True,
            debug_mode=CustomerDebugMode.ALLOWED.value,
            command_approval=False,
        )
        session.add(row)
    for name, value in values.items():
        setattr(row, "debug_mode" if name == "debug" else name, value)
    row.updated_at = utcnow()
    row.updated_by = caller.label
    session.flush()
    after = _view(row)
    changed = tuple(sorted(n for n in values if getattr(before, n) != getattr(after, n)))
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.actor_of(caller),
            action="policy.customer.set",
            outcome=Outcome.SUCCEEDED,
            deployment=deployment_id,
            target=deployment_id,
            details={"changed": list(changed), "policy": policy_details(after)},
        ),
    )
    return PolicyChange(before=before, after=after, changed=changed)


def policy_details(view: CustomerPolicyView) -> dict[str, Any]:
    """The policy as plain JSON (audit details and the API)."""
    return {
        "access": view.access,
        "debug": view.debug.value,
        "max_ttl_seconds": view.max_ttl_seconds,
        "channels": _listed(view.channels),
        "egress_allow": _listed(view.egress_allow),
        "commands": _listed(view.commands),
        "command_approval": view.command_approval,
    }


def hold_release(session: Session, deployment_id: str, release_id: str) -> None:
    """Remember the newest release the vendor sent while access was off (delivered on resume)."""
    row = session.get(CustomerPolicy, deployment_id)
    assert row is not None and not row.access, "only a suspended deployment holds releases"
    row.held_release_id = release_id


def take_held_release(session: Session, deployment_id: str) -> str | None:
    """The release held during a suspension, forgotten as it is handed back."""
    row = session.get(CustomerPolicy, deployment_id)
    if row is None or row.held_release_id is None:
        return None
    held, row.held_release_id = row.held_release_id, None
    return held


# --- helpers -----------------------------------------------------------------------------------


def _view(row: CustomerPolicy) -> CustomerPolicyView:
    return CustomerPolicyView(
        deployment_id=row.deployment_id,
        access=row.access,
        debug=CustomerDebugMode(row.debug_mode),
        max_ttl_seconds=row.max_ttl_seconds,
        channels=_tuple(row.channels),
        egress_allow=_tuple(row.egress_allow),
        commands=_tuple(row.commands),
        command_approval=row.command_approval,
        stored=True,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        held_release=row.held_release_id,
    )


def _tuple(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def _validated(name: str, value: Any) -> Any:
    """The stored form of one field, or ``ValidationError`` naming it."""
    if name in ("access", "command_approval"):
        if not isinstance(value, bool):
            raise ValidationError(f"{name} is true or false", field=name)
        return value
    if name == "debug":
        try:
            return CustomerDebugMode(value).value
        except ValueError:
            modes = ", ".join(m.value for m in CustomerDebugMode)
            raise ValidationError(f"debug is one of {modes}", field="debug") from None
    if value is None:
        return None
    if name == "max_ttl_seconds":
        limit = debug_policies.MAX_TTL_LIMIT
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValidationError(f"max_ttl_seconds is 1..{limit}", field=name)
        return value
    items = _strings(name, value)
    if name == "channels":
        try:
            return sorted({normalise_channel(item) for item in items})
        except ValueError as exc:
            raise ValidationError(str(exc), field=name) from None
    if name == "egress_allow":
        if items:  # an empty list is fine: nothing may be reached
            try:
                HostAllowlist(items)
            except ValidationError as exc:
                raise ValidationError(exc.message, field=name) from None
        return sorted({item.strip().lower() for item in items})
    for item in items:
        validate_command_name(item)
    return sorted(set(items))


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{name} is a list of strings (or null: no limit)", field=name)
    if len(value) > MAX_LIST:
        raise ValidationError(f"{name} has more than {MAX_LIST} entries", field=name)
    return list(value)
