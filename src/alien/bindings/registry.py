"""Which backend serves a (platform, kind) pair.

Backends register themselves when their platform package is imported
(``alien.bindings.local`` registers the local ones). :func:`lookup` imports
``alien.bindings.<platform>`` on first use, so a process pays only for the platform it runs
on and adding a platform (``aws``, ...) needs no change here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from alien.bindings.base import RESOURCE_KINDS, Resource, ResourceKind
from alien.errors import BindingError

_PLATFORM = re.compile(r"[a-z][a-z0-9_]*")

Factory = Callable[[str, Any], Resource]
"""``factory(resource_id, config) -> backend``; ``config`` is an instance of the config model."""


@dataclass(frozen=True, slots=True)
class Backend:
    platform: str
    kind: ResourceKind
    config_model: type[BaseModel]
    factory: Factory


_BACKENDS: dict[tuple[str, str], Backend] = {}


def register(
    platform: str, kind: ResourceKind, config_model: type[BaseModel], factory: Factory
) -> None:
    """Make ``factory`` the backend for ``kind`` on ``platform`` (re-registering replaces)."""
    if kind not in RESOURCE_KINDS:
        raise ValueError(f"unknown resource kind {kind!r}")
    if not _PLATFORM.fullmatch(platform):
        raise ValueError(f"invalid platform name {platform!r}")
    _BACKENDS[(platform, kind)] = Backend(platform, kind, config_model, factory)


def lookup(platform: str, kind: str) -> Backend:
    """The backend for ``(platform, kind)``, importing the platform's package if needed."""
    if kind not in RESOURCE_KINDS:
        raise BindingError(
            f"unknown resource kind {kind!r}; expected one of {', '.join(RESOURCE_KINDS)}",
            field="kind",
        )
    if (platform, kind) not in _BACKENDS:
        _import_platform(platform)
    try:
        return _BACKENDS[(platform, kind)]
    except KeyError:
        raise BindingError(
            f"platform {platform!r} has no {kind} backend", field="platform"
        ) from None


def _import_platform(platform: str) -> None:
    if not isinstance(platform, str) or not _PLATFORM.fullmatch(platform):
        raise BindingError(f"invalid platform name {platform!r}", field="platform")
    try:
        importlib.import_module(f"alien.bindings.{platform}")
    except ModuleNotFoundError as exc:
        if exc.name != f"alien.bindings.{platform}":
            raise
        raise BindingError(
            f"platform {platform!r} has no resource backends in this installation",
            field="platform",
        ) from None
