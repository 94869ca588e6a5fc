"""The manifest's wire models: what a stack looks like as JSON (docs/ARCHITECTURE.md).

Platforms, the manager and the agent work on these validated, immutable models, never on raw
dicts. Models normalise while validating so that equal stacks give equal models and byte-identical
JSON: resources sorted by id, links sorted and including every trigger target, triggers and
storage events in canonical order, cron whitespace collapsed, ``./api/`` written ``api``.

Build a ``Manifest`` through ``alien.stack.manifest.manifest_from_dict`` (or ``Stack.validate``):
checks that span resources (unique ids, links to resources that exist) live there, not here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from alien.errors import NotFound
from alien.stack.kinds import Ingress, Lifecycle, ResourceKind
from alien.stack.rules import CodeSrc, Entrypoint, EnvName, EnvValue, ResourceId
from alien.stack.triggers import Trigger, canonical_triggers

MANIFEST_VERSION = 1
#: SQS allows 0 s to 12 h; 0 would make every received message visible again at once.
MAX_VISIBILITY_TIMEOUT = 43_200
DEFAULT_VISIBILITY_TIMEOUT = 30

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CodeSpec(BaseModel):
    model_config = _FROZEN
    src: CodeSrc
    entrypoint: Entrypoint


class FunctionConfig(BaseModel):
    model_config = _FROZEN
    code: CodeSpec
    links: tuple[ResourceId, ...] = ()
    ingress: Ingress = Ingress.PRIVATE
    commands_enabled: StrictBool = False
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()

    @field_validator("triggers")
    @classmethod
    def _canonical_triggers(cls, triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
        return canonical_triggers(triggers)

    @model_validator(mode="after")
    def _links_cover_triggers(self) -> FunctionConfig:
        """A trigger on a queue or storage needs its binding, so it is always a link too."""
        targets = {t.target for t in self.triggers if t.target is not None}
        links = tuple(sorted(set(self.links) | targets))
        return self if links == self.links else self.model_copy(update={"links": links})

    def trigger_targets(self) -> set[str]:
        return {t.target for t in self.triggers if t.target is not None}


class NoConfig(BaseModel):
    """Storage, vault and kv take no configuration yet; unknown keys are refused."""

    model_config = _FROZEN


class QueueConfig(BaseModel):
    model_config = _FROZEN
    visibility_timeout: Annotated[StrictInt, Field(ge=1, le=MAX_VISIBILITY_TIMEOUT)] = (
        DEFAULT_VISIBILITY_TIMEOUT
    )


class _Spec(BaseModel):
    model_config = _FROZEN
    id: ResourceId
    kind: ResourceKind  # each subclass narrows it to its own kind: the union's discriminator
    lifecycle: Lifecycle

    @property
    def label(self) -> str:
        """``kind:id``, how a resource is named in human output."""
        return f"{self.kind}:{self.id}"


class StorageSpec(_Spec):
    kind: Literal[ResourceKind.STORAGE]
    config: NoConfig = NoConfig()


class VaultSpec(_Spec):
    kind: Literal[ResourceKind.VAULT]
    config: NoConfig = NoConfig()


class KvSpec(_Spec):
    kind: Literal[ResourceKind.KV]
    config: NoConfig = NoConfig()


class QueueSpec(_Spec):
    kind: Literal[ResourceKind.QUEUE]
    config: QueueConfig = QueueConfig()


class FunctionSpec(_Spec):
    kind: Literal[ResourceKind.FUNCTION]
    config: FunctionConfig


ResourceSpec = Annotated[
    StorageSpec | VaultSpec | KvSpec | QueueSpec | FunctionSpec, Field(discriminator="kind")
]


class Manifest(BaseModel):
    """A validated stack manifest, with the look-ups platforms need."""

    model_config = _FROZEN
    manifest_version: Literal[1] = MANIFEST_VERSION
    name: ResourceId
    resources: tuple[ResourceSpec, ...] = ()

    @field_validator("resources")
    @classmethod
    def _sorted(cls, resources: tuple[ResourceSpec, ...]) -> tuple[ResourceSpec, ...]:
        return tuple(sorted(resources, key=lambda r: r.id))

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-ready data, in the form docs/ARCHITECTURE.md fixes."""
        return self.model_dump(mode="json")

    def resource(self, resource_id: str) -> ResourceSpec:
        for spec in self.resources:
            if spec.id == resource_id:
                return spec
        raise NotFound(f"stack {self.name!r} has no resource {resource_id!r}", field="resource")

    def of_kind(self, kind: ResourceKind | str) -> list[ResourceSpec]:
        return [r for r in self.resources if r.kind == kind]

    def functions(self) -> list[FunctionSpec]:
        return [r for r in self.resources if isinstance(r, FunctionSpec)]

    def function(self, function_id: str) -> FunctionSpec:
        spec = self.resource(function_id)
        if not isinstance(spec, FunctionSpec):
            raise NotFound(
                f"resource {function_id!r} is a {spec.kind}, not a function", field="resource"
            )
        return spec

    def bindings(self, function_id: str) -> list[ResourceSpec]:
        """The resources a function gets bindings for: its links, which include trigger targets.

        This is the whole of what goes into the function's ``ALIEN_BINDINGS``: least privilege
        starts here.
        """
        return [self.resource(link) for link in self.function(function_id).config.links]
