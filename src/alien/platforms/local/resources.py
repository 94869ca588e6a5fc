"""Local resources: where each lives in the area, its binding entry, create / check / delete.

The binding entry (what goes into a function's ``ALIEN_BINDINGS``) is built here and validated
with the bindings' own config models, so the platform can never hand a function an entry its
backend would refuse. Creating a resource means opening its backend once: the backends create
their directories, databases and vault keys idempotently, so "create" and "make sure it exists"
are the same operation and re-applying a manifest is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alien.bindings.env import Binding, parse_binding
from alien.errors import PlatformError
from alien.platforms.local.area import Area
from alien.stack.spec import (
    FunctionSpec,
    KvSpec,
    Manifest,
    QueueSpec,
    ResourceSpec,
    StorageSpec,
    VaultSpec,
)

PLATFORM = "local"


def storages_with_events(manifest: Manifest) -> dict[str, str]:
    """Storage id → the one function with a storage trigger on it.

    The local events queue delivers each event to one consumer; two functions triggering on one
    storage would each see only some of the events, so that is refused rather than half-working.
    """
    consumers: dict[str, str] = {}
    for fn in manifest.functions():
        for trigger in fn.config.triggers:
            if trigger.type != "storage":
                continue
            other = consumers.setdefault(trigger.storage, fn.id)
            if other != fn.id:
                raise PlatformError(
                    f"functions {other} and {fn.id} both have a storage trigger on "
                    f"{trigger.storage!r}; the local platform delivers each storage event to one "
                    "function: keep the trigger on one of them",
                    field=f"resources.{fn.id}.triggers",
                )
    return consumers


def binding_entry(area: Area, spec: ResourceSpec, *, events: bool = False) -> dict[str, Any]:
    """The ``ALIEN_BINDINGS`` entry for ``spec`` (without validation; see ``binding``)."""
    entry: dict[str, Any] = {"kind": str(spec.kind), "platform": PLATFORM}
    if isinstance(spec, StorageSpec):
        entry["path"] = str(area.storage_dir(spec.id))
        entry["events"] = str(area.events_db(spec.id)) if events else None
    elif isinstance(spec, VaultSpec):
        entry["path"] = str(area.vault_file(spec.id))
        entry["key_file"] = str(area.key_file(spec.id))
    elif isinstance(spec, KvSpec):
        entry["path"] = str(area.kv_db(spec.id))
    elif isinstance(spec, QueueSpec):
        entry["path"] = str(area.queue_db(spec.id))
        entry["visibility_timeout"] = float(spec.config.visibility_timeout)
    else:
        raise PlatformError(f"{spec.kind} {spec.id!r} is not a bindable resource", field=spec.id)
    return entry


def binding(area: Area, spec: ResourceSpec, *, events: bool = False) -> Binding:
    """The validated binding for ``spec``."""
    return parse_binding(spec.id, binding_entry(area, spec, events=events))


def function_bindings(area: Area, manifest: Manifest, fn: FunctionSpec) -> dict[str, Binding]:
    """What function ``fn`` may touch: its links (which include its trigger targets), no more."""
    with_events = storages_with_events(manifest)
    return {
        spec.id: binding(area, spec, events=spec.id in with_events)
        for spec in manifest.bindings(fn.id)
    }


def paths(area: Area, kind: str, resource_id: str) -> list[Path]:
    """Everything on disk that belongs to a resource (what deleting it removes)."""
    if kind == "storage":
        return [area.storage_dir(resource_id), area.events_db(resource_id)]
    if kind == "vault":
        return [area.vault_file(resource_id), area.key_file(resource_id)]
    if kind == "kv":
        return [area.kv_db(resource_id)]
    if kind == "queue":
        return [area.queue_db(resource_id)]
    return []


def create(area: Area, spec: ResourceSpec, *, events: bool = False) -> None:
    """Create ``spec`` in the area, or make sure it exists (idempotent)."""
    if isinstance(spec, FunctionSpec):
        return
    try:
        binding(area, spec, events=events).open().close()
    except PlatformError:
        raise
    except Exception as exc:
        raise PlatformError(
            f"cannot create {spec.kind} {spec.id!r}: {exc}", field=f"resources.{spec.id}"
        ) from exc


def missing(area: Area, kind: str, resource_id: str) -> list[str]:
    """What should exist for a provisioned resource but does not (monitoring)."""
    expected = {
        "storage": [area.storage_dir(resource_id)],
        "vault": [area.key_file(resource_id)],  # the data file appears with the first secret
        "kv": [area.kv_db(resource_id)],
        "queue": [area.queue_db(resource_id)],
    }.get(kind, [])
    return [str(path.relative_to(area.root)) for path in expected if not path.exists()]


def delete(area: Area, kind: str, resource_id: str) -> None:
    """Remove a resource's data (LIVE resources dropped from the stack; teardown)."""
    for path in paths(area, kind, resource_id):
        area.remove(path)
        if path.suffix == ".db":  # SQLite's companions
            for companion in ("-wal", "-shm"):
                area.remove(path.with_name(path.name + companion))
        if kind == "vault":
            area.remove(path.with_name(path.name + ".lock"))
