"""Trigger decorators: ``@alien.on_queue_message``, ``@alien.on_storage_event``, ``@alien.on_cron``.

A decorator only records the handler in the registry and returns the function unchanged, so the
function stays an ordinary callable that tests can call directly. Whether the trigger actually
fires is decided by the stack (the function's ``triggers``): the runtime runs a loop for each
trigger the platform passes in ``ALIEN_TRIGGERS`` and dispatches to the handler registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from alien.errors import ValidationError
from alien.sdk.registry import HandlerKind, registry

F = TypeVar("F", bound=Callable[..., Any])


def _decorator(kind: HandlerKind, name: str) -> Callable[[F], F]:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"@alien.on_{kind}... needs a resource name", field="name")

    def register(func: F) -> F:
        registry.add(kind, name, func)
        return func

    return register


def on_queue_message(queue: str) -> Callable[[F], F]:
    """Handle each message of ``queue``; the handler receives a :class:`QueueMessage`.

    The message is acknowledged only when the handler returns; if it raises, the message becomes
    visible again after the queue's visibility timeout and is delivered again (at-least-once).
    """
    return _decorator(HandlerKind.QUEUE, queue)


def on_storage_event(storage: str) -> Callable[[F], F]:
    """Handle object events of ``storage``; the handler receives a :class:`StorageEvent`."""
    return _decorator(HandlerKind.STORAGE, storage)


def on_cron(name: str) -> Callable[[F], F]:
    """Handle the cron trigger called ``name``; the handler receives a :class:`CronTick`.

    The schedule lives in the stack (``{"type": "cron", "name": ..., "schedule": ...}``) so an
    operator can see and change it without reading app code.
    """
    return _decorator(HandlerKind.CRON, name)
