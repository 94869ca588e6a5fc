"""Resource bindings: the storage/vault/kv/queue interfaces and their per-platform backends.

App code reaches these through ``alien.storage(name)`` and friends; platforms describe what
they bound in ``ALIEN_BINDINGS`` (:mod:`alien.bindings.env`).
"""

from __future__ import annotations

from alien.bindings.base import Kv, Message, ObjectInfo, Queue, Resource, Storage, Vault
from alien.bindings.events import StorageEvent

__all__ = [
    "Kv",
    "Message",
    "ObjectInfo",
    "Queue",
    "Resource",
    "Storage",
    "StorageEvent",
    "Vault",
]
