"""Bring the area's resources in line with a manifest, honouring each resource's lifecycle.

* New resource: created, recorded in ``state.json``.
* LIVE resource: made sure to exist (recreated if someone deleted it); configuration changes
  take effect (for a queue, its visibility timeout reaches functions through their bindings).
* FROZEN resource: created once, then never modified, only monitored. A configuration change
  in a later manifest is ignored with a warning, and functions keep getting bindings built from
  the configuration recorded when it was created. If its files go missing it is reported, not
  silently recreated empty: that would hide the loss of customer data.
* Dropped from the stack: a LIVE resource is deleted (after the functions that used it are
  stopped: ``drop``); a FROZEN one is kept ("retained").

Functions are not handled here (see ``platform``); storages that a function triggers on get an
events queue (``resources.storages_with_events``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alien.errors import PlatformError
from alien.platforms.local import resources
from alien.platforms.local.area import Area
from alien.platforms.local.state import AreaState, ResourceRecord, utcnow
from alien.platforms.local.status import ResourceStatus
from alien.stack.kinds import Lifecycle, ResourceKind
from alien.stack.spec import Manifest, ResourceSpec

FROZEN = Lifecycle.FROZEN.value


@dataclass
class Reconciled:
    """The manifest as it takes effect (FROZEN configs as recorded) and what to tell the user."""

    manifest: Manifest
    warnings: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """LIVE resources no longer in the stack: delete them (``drop``) once nothing uses them."""


def _config(spec: ResourceSpec) -> dict[str, object]:
    return spec.config.model_dump(mode="json")


def _as_recorded(spec: ResourceSpec, record: ResourceRecord) -> ResourceSpec:
    config = type(spec.config).model_validate(record.config)
    return spec.model_copy(update={"config": config})


def reconcile(area: Area, state: AreaState, manifest: Manifest) -> Reconciled:
    """Create/update/delete resources so the area matches ``manifest``; updates ``state``."""
    with_events = resources.storages_with_events(manifest)
    warnings: list[str] = []
    dropped: list[str] = []
    effective: list[ResourceSpec] = []
    for spec in manifest.resources:
        if spec.kind == ResourceKind.FUNCTION:
            effective.append(spec)
            continue
        events = spec.id in with_events
        record = state.resources.get(spec.id)
        if record is not None and record.kind != spec.kind:
            if record.lifecycle == FROZEN:
                raise PlatformError(
                    f"{spec.id!r} is a frozen {record.kind}; the stack now declares a "
                    f"{spec.kind}: frozen resources are never replaced, choose another id",
                    field=f"resources.{spec.id}",
                )
            resources.delete(area, record.kind, spec.id)
            record = None
        if record is None:
            resources.create(area, spec, events=events)
            state.resources[spec.id] = ResourceRecord(
                kind=str(spec.kind), lifecycle=str(spec.lifecycle), config=_config(spec)
            )
            effective.append(spec)
        elif record.lifecycle == FROZEN:
            if record.config != _config(spec):
                warnings.append(
                    f"frozen {spec.kind} {spec.id!r}: configuration change ignored "
                    "(frozen resources are never modified after creation)"
                )
            if spec.lifecycle != FROZEN:  # the vendor hands it over to updates from now on
                record.lifecycle = str(spec.lifecycle)
                record.updated_at = utcnow()
            effective.append(_as_recorded(spec, record))
        else:
            resources.create(area, spec, events=events)
            if record.config != _config(spec) or record.lifecycle != spec.lifecycle:
                record.config, record.lifecycle = _config(spec), str(spec.lifecycle)
                record.updated_at = utcnow()
            effective.append(spec)
    wanted = {spec.id for spec in manifest.resources}
    for resource_id, record in list(state.resources.items()):
        if resource_id in wanted:
            continue
        if record.lifecycle == FROZEN:
            warnings.append(
                f"frozen {record.kind} {resource_id!r} is no longer in the stack; its data is "
                "retained (delete it with a teardown)"
            )
        else:
            dropped.append(resource_id)
    updated = manifest.model_copy(update={"resources": tuple(effective)})
    return Reconciled(manifest=updated, warnings=warnings, dropped=dropped)


def drop(area: Area, state: AreaState, resource_ids: list[str]) -> None:
    """Delete LIVE resources the stack no longer has, and forget them."""
    for resource_id in resource_ids:
        record = state.resources.pop(resource_id, None)
        if record is not None:
            resources.delete(area, record.kind, resource_id)


def monitor(area: Area, state: AreaState, manifest: Manifest | None) -> list[ResourceStatus]:
    """The health of every recorded resource."""
    wanted = {spec.id for spec in manifest.resources} if manifest is not None else None
    report = []
    for resource_id, record in sorted(state.resources.items()):
        gone = resources.missing(area, record.kind, resource_id)
        if gone:
            health, detail = "missing", "missing: " + ", ".join(gone)
        elif wanted is not None and resource_id not in wanted:
            health, detail = "retained", "no longer in the stack; data kept"
        else:
            health, detail = "ok", None
        report.append(
            ResourceStatus(resource_id, record.kind, record.lifecycle, health, detail)  # type: ignore[arg-type]
        )
    return report
