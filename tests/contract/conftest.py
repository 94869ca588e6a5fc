"""Fixtures that run every contract suite against every backend.

A backend is described the way a platform describes it to a function: an ``ALIEN_BINDINGS``
entry. Each suite asks for ``storage``/``vault``/``kv``/``queue`` (opened from such an entry)
or for ``binding(kind)`` itself when it needs to open the same resource again, e.g. in
another process. To run the suites against another platform, add it to ``PLATFORMS`` and
teach :func:`_binding_entry` how to provision a fresh resource there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_support import open_entry

from alien.bindings.base import Kv, Queue, ResourceKind, Storage, Vault

PLATFORMS = ["local"]

BindingFactory = Callable[[ResourceKind], dict[str, Any]]


def _binding_entry(platform: str, kind: ResourceKind, root: Path) -> dict[str, Any]:
    """A fresh, empty resource of ``kind`` on ``platform``, as an ALIEN_BINDINGS entry."""
    if platform == "local":
        config: dict[str, Any] = {
            "storage": {"path": str(root / "bucket")},
            "vault": {"path": str(root / "vault" / "v.vault"), "key_file": str(root / "v.key")},
            "kv": {"path": str(root / "kv.db")},
            "queue": {"path": str(root / "queue.db"), "visibility_timeout": 30},
        }[kind]
        return {"kind": kind, "platform": "local", **config}
    raise NotImplementedError(platform)


@pytest.fixture(params=PLATFORMS)
def platform(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def binding(platform: str, tmp_path: Path) -> BindingFactory:
    """``binding(kind)`` -> a new resource's binding entry (each call a distinct resource)."""
    counter = itertools.count()

    def make(kind: ResourceKind) -> dict[str, Any]:
        root = tmp_path / f"{kind}-{next(counter)}"
        root.mkdir()
        return _binding_entry(platform, kind, root)

    return make


def _opened(binding: BindingFactory, kind: ResourceKind) -> Iterator[Any]:
    backend = open_entry(binding(kind))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def storage(binding: BindingFactory) -> Iterator[Storage]:
    yield from _opened(binding, "storage")


@pytest.fixture
def vault(binding: BindingFactory) -> Iterator[Vault]:
    yield from _opened(binding, "vault")


@pytest.fixture
def kv(binding: BindingFactory) -> Iterator[Kv]:
    yield from _opened(binding, "kv")


@pytest.fixture
def queue(binding: BindingFactory) -> Iterator[Queue]:
    yield from _opened(binding, "queue")
