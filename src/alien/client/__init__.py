"""Python client for the manager's HTTP API, shared by the CLIs and the agent.

* ``config`` — ``ClientConfig``: manager URL and token from flags or ``ALIEN_*`` variables
* ``call`` / ``calls`` — a ``Call`` (plain data) and every API call described once
* ``sync`` / ``aio`` — ``ManagerClient`` (CLIs) and ``AsyncManagerClient`` (agent), on httpx
* ``lite`` — ``LiteClient``: executes calls on asyncio + h11, for ``alien debug``'s start-up
* ``errors`` — error bodies back into ``AlienError`` subclasses; ``ManagerUnreachable``
* ``models`` — response bodies
* ``package`` — the release package format: deterministic build, hostile-input-safe extraction

The names below are loaded on first use (PEP 562): importing one light submodule, such as
``alien.client.config``, must not import httpx and pydantic through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alien.client.aio import AsyncManagerClient, PackageMismatch
    from alien.client.config import ClientConfig
    from alien.client.errors import ManagerUnreachable
    from alien.client.sync import ManagerClient

_HOMES = {
    "AsyncManagerClient": "alien.client.aio",
    "PackageMismatch": "alien.client.aio",
    "ClientConfig": "alien.client.config",
    "ManagerUnreachable": "alien.client.errors",
    "ManagerClient": "alien.client.sync",
}

__all__ = [
    "AsyncManagerClient",
    "ClientConfig",
    "ManagerClient",
    "ManagerUnreachable",
    "PackageMismatch",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
