"""Python client for the manager's HTTP API, shared by the CLIs and the agent.

* ``config`` — ``ClientConfig``: manager URL and token from flags or ``ALIEN_*`` variables
* ``calls`` — every API call described once (method, path, body, decoder)
* ``sync`` / ``aio`` — ``ManagerClient`` (CLIs) and ``AsyncManagerClient`` (agent)
* ``errors`` — error bodies back into ``AlienError`` subclasses; ``ManagerUnreachable``
* ``models`` — response bodies
* ``package`` — the release package format: deterministic build, hostile-input-safe extraction
"""

from __future__ import annotations

from alien.client.aio import AsyncManagerClient, PackageMismatch
from alien.client.config import ClientConfig
from alien.client.errors import ManagerUnreachable
from alien.client.sync import ManagerClient

__all__ = [
    "AsyncManagerClient",
    "ClientConfig",
    "ManagerClient",
    "ManagerUnreachable",
    "PackageMismatch",
]
