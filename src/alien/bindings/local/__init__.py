"""Backends of the local platform: files, an encrypted file and SQLite, in the local area.

Importing this package registers them with :mod:`alien.bindings.registry` (the binding
environment imports it on first use of ``"platform": "local"``).
"""

from __future__ import annotations

from alien.bindings.local.config import (
    LocalKvConfig,
    LocalQueueConfig,
    LocalStorageConfig,
    LocalVaultConfig,
)
from alien.bindings.local.kv import LocalKv
from alien.bindings.local.queue import LocalQueue
from alien.bindings.local.storage import LocalStorage
from alien.bindings.local.vault import LocalVault
from alien.bindings.registry import register

register("local", "storage", LocalStorageConfig, LocalStorage.from_config)
register("local", "vault", LocalVaultConfig, LocalVault.from_config)
register("local", "kv", LocalKvConfig, LocalKv.from_config)
register("local", "queue", LocalQueueConfig, LocalQueue.from_config)

__all__ = [
    "LocalKv",
    "LocalKvConfig",
    "LocalQueue",
    "LocalQueueConfig",
    "LocalStorage",
    "LocalStorageConfig",
    "LocalVault",
    "LocalVaultConfig",
]
