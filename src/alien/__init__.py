"""alien: define your app once, ship it into your customers' environments, operate it from yours.

Two audiences import this package:

* the stack definition (``alien_stack.py``) uses the resource builders: ``alien.Stack``,
  ``alien.Function``, ``alien.Storage``, ``alien.Vault``, ``alien.Kv``, ``alien.Queue``;
* app code uses the SDK: ``alien.storage(name)``, ``alien.vault(name)``, ``alien.kv(name)``,
  ``alien.queue(name)``, trigger decorators, ``@alien.command``, ``alien.serve(app)``.
"""

from __future__ import annotations

from alien.errors import AlienError

__version__ = "0.1.0"

# --- stack builders (owned by alien.stack) ---
from alien.stack import Function, Ingress, Kv, Lifecycle, Queue, Stack, Storage, Vault

# --- end stack builders ---

# --- sdk (owned by alien.sdk) ---
# isort: split
from alien.sdk.resources import kv, queue, storage, vault

# isort: split
from alien.sdk.serve import serve
from alien.sdk.triggers import on_cron, on_queue_message, on_storage_event

# isort: split
from alien.sdk.commands import CommandContext, command

# --- end sdk ---

__all__ = [
    "AlienError",
    "CommandContext",  # sdk (RUF022 sorts CamelCase names first)
    # stack builders
    "Function",
    "Ingress",
    "Kv",
    "Lifecycle",
    "Queue",
    "Stack",
    "Storage",
    "Vault",
    # end stack builders
    "__version__",
    # sdk
    "command",
    "kv",
    "on_cron",
    "on_queue_message",
    "on_storage_event",
    "queue",
    "serve",
    "storage",
    "vault",
    # end sdk
]
