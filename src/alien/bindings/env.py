"""The binding environment: ``ALIEN_BINDINGS`` parsed into typed, per-resource configs.

The platform starts a function process with ``ALIEN_BINDINGS`` set to a JSON object mapping
resource id to ``{"kind": ..., "platform": ..., <platform config>}`` (see
``docs/ARCHITECTURE.md``). Each entry's config is validated by the model its backend
registered, so a malformed environment fails at once with the resource named, and a resource
the function did not link is refused with the list of what it did link (least privilege shows
up as a clear message, not as a missing file). Without ``ALIEN_BINDINGS`` at all, the code is not
running under a platform, and the error says that instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from alien.bindings.base import Resource, ResourceKind
from alien.bindings.registry import lookup
from alien.errors import BindingError

ENV_VAR = "ALIEN_BINDINGS"


@dataclass(frozen=True, slots=True)
class Binding:
    """One bound resource: its id, kind, platform and validated platform config."""

    id: str
    kind: ResourceKind
    platform: str
    config: pydantic.BaseModel

    def open(self) -> Resource:
        """A new backend object for this resource."""
        return lookup(self.platform, self.kind).factory(self.id, self.config)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready entry for ``ALIEN_BINDINGS`` (inverse of :func:`parse_binding`)."""
        return {
            "kind": self.kind,
            "platform": self.platform,
            **self.config.model_dump(mode="json"),
        }


def _invalid(why: str) -> BindingError:
    return BindingError(f"{ENV_VAR} is invalid: {why}", field=ENV_VAR)


def parse_binding(resource_id: str, entry: object) -> Binding:
    """Validate one ``ALIEN_BINDINGS`` entry into a :class:`Binding`."""
    if not isinstance(entry, dict):
        raise _invalid(f"resource {resource_id!r}: expected an object")
    config = dict(entry)
    kind = config.pop("kind", None)
    platform = config.pop("platform", None)
    if not isinstance(kind, str) or not isinstance(platform, str):
        raise _invalid(f"resource {resource_id!r}: 'kind' and 'platform' must be strings")
    backend = lookup(platform, kind)
    try:
        model = backend.config_model.model_validate(config)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise _invalid(f"resource {resource_id!r} ({platform} {kind}): {problems}") from None
    return Binding(resource_id, backend.kind, platform, model)


class Bindings(Mapping[str, Binding]):
    """The resources bound to this process, by id.

    ``Bindings()`` (no mapping) stands for a process without ``ALIEN_BINDINGS`` at all, and
    ``Bindings({})`` for one the platform started with nothing linked: the first is code run
    outside any platform (plain pytest, plain uvicorn), and saying "not linked" there would send
    its author to the stack's links instead of to ``alien dev``.
    """

    def __init__(self, bindings: Mapping[str, Binding] | None = None) -> None:
        self._set = bindings is not None
        self._bindings = dict(bindings or {})

    def __getitem__(self, name: str) -> Binding:
        return self._bindings[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bindings)

    def __len__(self) -> int:
        return len(self._bindings)

    def require(self, name: str, kind: ResourceKind) -> Binding:
        """The binding for ``name``, which must be linked and of ``kind``."""
        if not isinstance(name, str):
            raise BindingError(
                f"resource name must be a string, not {type(name).__name__}", field="name"
            )
        binding = self._bindings.get(name)
        if binding is None and not self._set:
            raise BindingError(
                f"resource {name!r} is not available: {ENV_VAR} is not set, so this code is not "
                f"running under an alien platform (run it with `alien dev`, or set {ENV_VAR} in "
                "tests)",
                field="name",
            )
        if binding is None:
            linked = ", ".join(sorted(self._bindings)) or "none"
            raise BindingError(
                f"resource {name!r} is not linked to this function; linked: {linked}",
                field="name",
            )
        if binding.kind != kind:
            raise BindingError(f"resource {name!r} is a {binding.kind}, not a {kind}", field="name")
        return binding

    def dumps(self) -> str:
        """Serialise for ``ALIEN_BINDINGS`` (sorted, so equal bindings give equal text)."""
        return json.dumps({name: b.to_dict() for name, b in self._bindings.items()}, sort_keys=True)


def parse_bindings(text: str | None) -> Bindings:
    """Parse the JSON text of ``ALIEN_BINDINGS``; unset or blank means nothing is bound.

    Blank counts as unset (``ALIEN_BINDINGS=`` in a shell): a platform always writes an object.
    """
    if text is None or not text.strip():
        return Bindings()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(f"not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise _invalid("expected a JSON object mapping resource id to binding")
    return Bindings({str(rid): parse_binding(str(rid), entry) for rid, entry in raw.items()})


def from_environ(environ: Mapping[str, str] | None = None) -> Bindings:
    """The bindings of this process (``os.environ`` unless another mapping is given)."""
    env = os.environ if environ is None else environ
    return parse_bindings(env.get(ENV_VAR))
