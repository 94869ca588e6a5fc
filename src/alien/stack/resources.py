"""The resource builders used in ``alien_stack.py``: ``Function``, ``Storage``, ``Vault``, ``Kv``,
``Queue``.

Builders only record what the author wrote (methods return ``self`` so calls chain); nothing is
checked here. ``Stack.validate`` turns the records into manifest data and validates it with the
same models that check untrusted manifests, so both paths accept and refuse exactly the same
things, and every problem in a stack is reported at once with a field naming the resource.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, ClassVar, Self

from alien.stack.kinds import Ingress, ResourceKind, StorageEvent


def wire(value: object) -> object:
    """Enums as their plain value; anything else as given (validation judges it later)."""
    return value.value if isinstance(value, Enum) else value


def ref(target: object) -> object:
    """A resource given by object or by id, as its id."""
    return target.id if isinstance(target, Resource) else target


class Resource:
    """A named piece of infrastructure in a stack; ``id`` is unique within the stack."""

    kind: ClassVar[ResourceKind]

    def __init__(self, id: str, /) -> None:
        self.id = id

    def config(self) -> dict[str, Any]:
        """The manifest ``config`` object for this resource."""
        return {}

    def to_raw(self, lifecycle: object) -> dict[str, Any]:
        """Unvalidated manifest data for this resource with the lifecycle it was added with."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "lifecycle": wire(lifecycle),
            "config": self.config(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


class Storage(Resource):
    """An object store (a bucket): ``alien.storage(id)`` in app code."""

    kind = ResourceKind.STORAGE


class Vault(Resource):
    """A store of secrets, encrypted at rest: ``alien.vault(id)`` in app code."""

    kind = ResourceKind.VAULT


class Kv(Resource):
    """A key-value store with TTLs: ``alien.kv(id)`` in app code."""

    kind = ResourceKind.KV


class Queue(Resource):
    """A message queue: ``alien.queue(id)`` in app code.

    ``visibility_timeout`` (seconds) is how long a received message stays hidden before it is
    offered again unless acked; it bounds how long a queue-triggered handler may run.
    """

    kind = ResourceKind.QUEUE

    def __init__(self, id: str, /, *, visibility_timeout: int | None = None) -> None:
        super().__init__(id)
        self.visibility_timeout = visibility_timeout

    def config(self) -> dict[str, Any]:
        if self.visibility_timeout is None:
            return {}
        return {"visibility_timeout": self.visibility_timeout}


class Function(Resource):
    """Code that runs: an HTTP (ASGI) app and/or handlers for triggers and commands."""

    kind = ResourceKind.FUNCTION

    def __init__(self, id: str, /) -> None:
        super().__init__(id)
        self._code: dict[str, object] | None = None
        self._links: list[object] = []
        self._ingress: object = Ingress.PRIVATE
        self._commands_enabled: object = False
        self._env: dict[object, object] = {}
        self._triggers: list[dict[str, object]] = []

    def code(self, src: str | os.PathLike[str], entrypoint: str) -> Self:
        """``src``: the code directory, relative to the app directory; ``entrypoint``:
        ``module.path:attribute`` of the ASGI app (or of a module using ``alien.serve``)."""
        self._code = {
            "src": os.fspath(src) if isinstance(src, os.PathLike) else src,
            "entrypoint": entrypoint,
        }
        return self

    def link(self, resource: Resource | str) -> Self:
        """Give the function a binding for ``resource`` (its only way to reach it)."""
        self._links.append(ref(resource))
        return self

    def ingress(self, mode: Ingress | str) -> Self:
        """``"public"`` to expose the HTTP app outside the environment (default ``"private"``)."""
        self._ingress = mode
        return self

    def commands_enabled(self, enabled: bool = True) -> Self:
        """Let the vendor's control plane run ``@alien.command`` handlers in this function."""
        self._commands_enabled = enabled
        return self

    def env(self, values: Mapping[str, str]) -> Self:
        """Plain configuration for the process environment (secrets belong in a Vault)."""
        self._env.update(values)
        return self

    def on_queue(self, queue: Queue | str) -> Self:
        """Run queue-message handlers for each message on ``queue`` (implies a link)."""
        self._triggers.append({"type": "queue", "queue": ref(queue)})
        return self

    def on_storage(
        self,
        storage: Storage | str,
        events: Iterable[StorageEvent | str] | str = (StorageEvent.PUT, StorageEvent.DELETE),
    ) -> Self:
        """Run storage-event handlers when objects in ``storage`` are put and/or deleted."""
        listed = [events] if isinstance(events, str) else list(events)
        self._triggers.append(
            {"type": "storage", "storage": ref(storage), "events": [wire(e) for e in listed]}
        )
        return self

    def schedule(self, name: str, cron: str) -> Self:
        """Run the ``@alien.on_cron(name)`` handler on ``cron`` (5 fields, or 6 with seconds)."""
        self._triggers.append({"type": "cron", "name": name, "schedule": cron})
        return self

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "links": list(self._links),
            "ingress": wire(self._ingress),
            "commands_enabled": self._commands_enabled,
            "env": dict(self._env),
            "triggers": [dict(t) for t in self._triggers],
        }
        if self._code is not None:
            config["code"] = dict(self._code)
        return config
