"""``Stack``: the set of resources that make up an app, each with its lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from alien.errors import StackError
from alien.stack.kinds import Lifecycle
from alien.stack.manifest import validate_manifest
from alien.stack.resources import Resource
from alien.stack.spec import MANIFEST_VERSION, Manifest


class Stack:
    """What gets deployed into a customer environment.

    ``add`` each resource with its lifecycle: ``"frozen"`` (created once, then only monitored:
    the vendor can never change it) or ``"live"`` (the vendor keeps updating it). Validation is
    deferred to ``validate`` / ``to_manifest`` so every problem is reported at once.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: list[tuple[Resource, Lifecycle | str]] = []

    def add(self, resource: Resource, lifecycle: Lifecycle | str) -> Self:
        if not isinstance(resource, Resource):
            raise StackError(
                f"Stack.add takes a Function, Storage, Vault, Kv or Queue, not "
                f"{type(resource).__name__}",
                field="resources",
            )
        self._entries.append((resource, lifecycle))
        return self

    @property
    def resources(self) -> list[tuple[Resource, Lifecycle | str]]:
        return list(self._entries)

    def raw(self) -> dict[str, Any]:
        """Manifest data as written, before validation and normalisation."""
        return {
            "manifest_version": MANIFEST_VERSION,
            "name": self.name,
            "resources": [resource.to_raw(lifecycle) for resource, lifecycle in self._entries],
        }

    def validate(self, app_dir: Path | None = None) -> Manifest:
        """Check everything (and, given ``app_dir``, the code directories); raise one
        ``StackError`` listing every problem, or return the validated manifest."""
        return validate_manifest(self.raw(), app_dir=app_dir)

    def to_manifest(self, app_dir: Path | None = None) -> dict[str, Any]:
        """The manifest JSON data (docs/ARCHITECTURE.md), validated."""
        return self.validate(app_dir).to_dict()

    def __repr__(self) -> str:
        return f"Stack({self.name!r}, {len(self._entries)} resources)"
