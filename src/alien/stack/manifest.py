"""Parsing, dumping and hashing stack manifests.

The manager receives manifests from the network, so ``manifest_from_dict`` / ``manifest_from_json``
treat their input as hostile: anything that is not a valid manifest becomes one ``StackError``
(code ``INVALID_STACK``, HTTP 422) naming the field, never another exception. ``dump_manifest``
gives the canonical bytes (sorted keys, resources sorted by id, compact separators, ASCII, trailing
newline) so ``manifest_digest`` is the same for the same stack wherever it is computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from alien.errors import StackError
from alien.stack.checks import duplicate_ids, reference_problems
from alien.stack.codedirs import code_dir_problems
from alien.stack.problems import Problem, from_pydantic, raise_problems
from alien.stack.rules import ResourceId, check_resource_id
from alien.stack.spec import Manifest, ResourceSpec

ManifestLike = Manifest | Mapping[str, Any]

_RESOURCE: TypeAdapter[ResourceSpec] = TypeAdapter(ResourceSpec)


class _Envelope(BaseModel):
    """The manifest minus its resources, which are validated one by one to report them all."""

    model_config = ConfigDict(extra="forbid")
    manifest_version: Literal[1]
    name: ResourceId
    resources: list[Any]


def _resource_prefix(index: int, item: object) -> str:
    """``resources.<id>`` when the resource has a valid id, else ``resources[<index>]``."""
    rid = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(rid, str):
        try:
            return f"resources.{check_resource_id(rid)}"
        except ValueError:
            pass
    return f"resources[{index}]"


def validate_manifest(raw: object, *, app_dir: Path | None = None) -> Manifest:
    """Validate manifest data (and, given ``app_dir``, the code directories it names).

    Every problem found is reported in one ``StackError`` (see ``alien.stack.problems``).
    """
    if isinstance(raw, Manifest) and app_dir is None:
        return raw
    data = raw.to_dict() if isinstance(raw, Manifest) else raw
    if not isinstance(data, Mapping):
        raise StackError("a manifest must be a JSON object", field="manifest")
    problems: list[Problem] = []
    envelope: _Envelope | None = None
    try:
        envelope = _Envelope.model_validate(data)
    except PydanticValidationError as exc:
        problems += from_pydantic(exc)
    items = data.get("resources")
    items = items if isinstance(items, list) else []

    parsed: list[tuple[str, ResourceSpec]] = []
    declared_ids: list[str] = []
    kinds: dict[str, str] = {}
    for index, item in enumerate(items):
        prefix = _resource_prefix(index, item)
        if isinstance(item, Mapping) and isinstance(rid := item.get("id"), str):
            declared_ids.append(rid)
            if isinstance(kind := item.get("kind"), str):
                kinds.setdefault(rid, kind)
        try:
            parsed.append((prefix, _RESOURCE.validate_python(item)))
        except PydanticValidationError as exc:
            problems += from_pydantic(exc, prefix, in_resource=True)
    problems += duplicate_ids(declared_ids)
    problems += reference_problems(parsed, kinds)
    if app_dir is not None:
        problems += code_dir_problems(parsed, app_dir)

    raise_problems(problems, f"stack {envelope.name!r}" if envelope else "the manifest")
    assert envelope is not None  # no problems means the envelope parsed
    return Manifest(name=envelope.name, resources=tuple(spec for _, spec in parsed))


def manifest_from_dict(data: Mapping[str, Any]) -> Manifest:
    """Parse untrusted manifest data (e.g. ``json.loads`` output) into a validated ``Manifest``."""
    return validate_manifest(data)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two values for one key would let two parsers see two different manifests."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StackError(
                f"manifest JSON has the key {key[:40]!r} twice in one object", field="manifest"
            )
        out[key] = value
    return out


def manifest_from_json(data: bytes | str) -> Manifest:
    """Parse manifest JSON text (e.g. a request body or a file)."""
    try:
        parsed = json.loads(data, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise StackError(
            f"manifest is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="manifest",
        ) from None
    except (UnicodeDecodeError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
        raise StackError(f"manifest JSON is {reason}", field="manifest") from None
    return validate_manifest(parsed)


def as_manifest(manifest: ManifestLike) -> Manifest:
    """Accept a ``Manifest`` as is, or validate manifest data."""
    return validate_manifest(manifest)


def dump_manifest(manifest: ManifestLike) -> bytes:
    """The canonical bytes of a manifest: equal stacks give identical bytes."""
    data = as_manifest(manifest).to_dict()
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def manifest_digest(manifest: ManifestLike) -> str:
    """``sha256:<hex>`` of ``dump_manifest``: the content hash a release records."""
    return "sha256:" + hashlib.sha256(dump_manifest(manifest)).hexdigest()
