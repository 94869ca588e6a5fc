"""``alien.storage(name)``, ``alien.vault(name)``, ``alien.kv(name)``, ``alien.queue(name)``.

App code names a resource by its stack id and gets the backend for whatever platform it runs
on; it never sees paths, ARNs or platform names. ``ALIEN_BINDINGS`` is parsed once per
process and each backend opened once per name (connections are reused), but both are
re-read whenever the variable's text changes, so tests and tools that rebind resources see
the new bindings.
"""

from __future__ import annotations

import os
import threading
from typing import TypeVar

from alien.bindings.base import Kv, Queue, Resource, ResourceKind, Storage, Vault
from alien.bindings.env import ENV_VAR, Bindings, parse_bindings
from alien.errors import BindingError

R = TypeVar("R", bound=Resource)


class _Cache:
    """The parsed bindings and opened backends for one value of ``ALIEN_BINDINGS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: str | None = None
        self._bindings = Bindings()
        self._opened: dict[str, Resource] = {}

    def get(self, name: str, kind: ResourceKind) -> Resource:
        source = os.environ.get(ENV_VAR)
        with self._lock:
            if source != self._source:
                # Backends from the old bindings stay usable by whoever holds them; they are
                # not closed here because app code may still be using them.
                self._bindings = parse_bindings(source)
                self._source = source
                self._opened = {}
            binding = self._bindings.require(name, kind)
            backend = self._opened.get(name)
            if backend is None:
                backend = self._opened[name] = binding.open()
            return backend


_cache = _Cache()


def _resource(name: str, kind: ResourceKind, cls: type[R]) -> R:
    backend = _cache.get(name, kind)
    if not isinstance(backend, cls):
        raise BindingError(
            f"the {kind} backend for {name!r} is a {type(backend).__name__}, not a {cls.__name__}",
            field="name",
        )
    return backend


def storage(name: str) -> Storage:
    """The storage (object store) resource ``name`` linked to this function."""
    return _resource(name, "storage", Storage)


def vault(name: str) -> Vault:
    """The vault (secrets) resource ``name`` linked to this function."""
    return _resource(name, "vault", Vault)


def kv(name: str) -> Kv:
    """The kv (key-value) resource ``name`` linked to this function."""
    return _resource(name, "kv", Kv)


def queue(name: str) -> Queue:
    """The queue resource ``name`` linked to this function."""
    return _resource(name, "queue", Queue)


__all__ = ["kv", "queue", "storage", "vault"]
