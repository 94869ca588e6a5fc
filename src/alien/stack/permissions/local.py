"""Management permissions on the local platform, as a readable list of actions per resource.

The local platform has no IAM; this is the contract it enforces when the control plane asks it to
act on a resource (and what ``alien stack permissions`` shows the customer): e.g.
``storage:data: read-config, monitor`` for a frozen bucket, plus ``update-config`` when live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alien.stack.kinds import Lifecycle, ResourceKind
from alien.stack.permissions.levels import MONITOR, UPDATE, levels
from alien.stack.spec import Manifest

_COMMON = {MONITOR: ("read-config", "monitor"), UPDATE: ("update-config",)}
_FUNCTION = {
    MONITOR: ("read-config", "monitor", "read-logs"),
    UPDATE: ("update-code", "update-config", "restart"),
}


@dataclass(frozen=True)
class LocalGrant:
    resource: str  # "kind:id"
    lifecycle: Lifecycle
    actions: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.resource}: {', '.join(self.actions)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "lifecycle": self.lifecycle.value,
            "actions": list(self.actions),
        }


def local_grants(manifest: Manifest) -> list[LocalGrant]:
    grants = []
    for spec in manifest.resources:
        table = _FUNCTION if spec.kind == ResourceKind.FUNCTION else _COMMON
        actions = tuple(a for level in levels(spec.lifecycle) for a in table[level])
        grants.append(LocalGrant(spec.label, spec.lifecycle, actions))
    return grants


def local_permissions(manifest: Manifest) -> dict[str, Any]:
    return {
        "platform": "local",
        "stack": manifest.name,
        "grants": [g.to_dict() for g in local_grants(manifest)],
    }
