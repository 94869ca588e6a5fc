"""alien: define your app once, ship it into your customers' environments, operate it from yours.

Two audiences import this package:

* the stack definition (``alien_stack.py``) uses the resource builders: ``alien.Stack``,
  ``alien.Function``, ``alien.Storage``, ``alien.Vault``, ``alien.Kv``, ``alien.Queue``;
* app code uses the SDK: ``alien.storage(name)``, ``alien.vault(name)``, ``alien.kv(name)``,
  ``alien.queue(name)``, trigger decorators, ``@alien.command``, ``alien.serve(app)``.

The names are loaded on first use (PEP 562): every tool of ours imports this package first, and
loading the stack and the SDK eagerly cost a third of a second before ``alien debug`` could even
start the engineer's command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alien.errors import AlienError

__version__ = "0.1.0"

_EXPORTS = {
    # stack builders (owned by alien.stack)
    "Function": "alien.stack",
    "Ingress": "alien.stack",
    "Kv": "alien.stack",
    "Lifecycle": "alien.stack",
    "Queue": "alien.stack",
    "Stack": "alien.stack",
    "Storage": "alien.stack",
    "Vault": "alien.stack",
    # sdk (owned by alien.sdk)
    "kv": "alien.sdk.resources",
    "queue": "alien.sdk.resources",
    "storage": "alien.sdk.resources",
    "vault": "alien.sdk.resources",
    "serve": "alien.sdk.serve",
    "on_cron": "alien.sdk.triggers",
    "on_queue_message": "alien.sdk.triggers",
    "on_storage_event": "alien.sdk.triggers",
    "CommandContext": "alien.sdk.commands",
    "command": "alien.sdk.commands",
}

if TYPE_CHECKING:
    from alien.sdk.commands import CommandContext, command
    from alien.sdk.resources import kv, queue, storage, vault
    from alien.sdk.serve import serve
    from alien.sdk.triggers import on_cron, on_queue_message, on_storage_event
    from alien.stack import Function, Ingress, Kv, Lifecycle, Queue, Stack, Storage, Vault


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alien' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "AlienError",
    "CommandContext",
    "Function",
    "Ingress",
    "Kv",
    "Lifecycle",
    "Queue",
    "Stack",
    "Storage",
    "Vault",
    "__version__",
    "command",
    "kv",
    "on_cron",
    "on_queue_message",
    "on_storage_event",
    "queue",
    "serve",
    "storage",
    "vault",
]
