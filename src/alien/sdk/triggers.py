"""Trigger decorators: ``@alien.on_queue_message``, ``@alien.on_storage_event``, ``@alien.on_cron``.

A decorator records the handler in the registry and returns the function unchanged, so the
function stays an ordinary callable that tests can call directly. Whether the trigger actually
fires is decided by the stack (the function's ``triggers``): the runtime runs a loop for each
trigger the platform passes in ``ALIEN_TRIGGERS`` and dispatches to the handler registered here.

The runtime calls every trigger handler the same way, ``handler(payload)``: one positional
argument, the :class:`QueueMessage`, :class:`StorageEvent` or :class:`CronTick`
(``runtime/dispatch.py``). A handler that cannot be called so is refused when the decorator runs,
at import: at delivery time it would fail on every message, and a queue would retry it forever.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from alien.errors import ValidationError
from alien.sdk.registry import HandlerKind, registry

F = TypeVar("F", bound=Callable[..., Any])


_CALLED_WITH: dict[HandlerKind, tuple[str, str, str]] = {
    HandlerKind.QUEUE: ("on_queue_message", "message", "QueueMessage"),
    HandlerKind.STORAGE: ("on_storage_event", "event", "StorageEvent"),
    HandlerKind.CRON: ("on_cron", "tick", "CronTick"),
}
"""Per trigger kind: the decorator, and the argument the runtime passes (name, type)."""


def _decorator(kind: HandlerKind, name: str) -> Callable[[F], F]:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"@alien.on_{kind}... needs a resource name", field="name")

    def register(func: F) -> F:
        if callable(func):  # the registry refuses what is not, with its own message
            _check_signature(kind, name, func)
        registry.add(kind, name, func)
        return func

    return register


def _check_signature(kind: HandlerKind, name: str, func: Callable[..., Any]) -> None:
    """``ValidationError`` unless ``func(payload)`` binds, as the runtime will call it.

    Only the call shape is checked, not annotations: a handler may annotate loosely (``object``)
    or not at all. A callable whose signature Python cannot read (some C builtins) is accepted,
    since nothing proves it wrong.
    """
    decorator, arg, payload = _CALLED_WITH[kind]
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(object())
    except TypeError as exc:
        func_name = getattr(func, "__name__", "")
        if inspect.isfunction(func) and func_name.isidentifier():  # not "<lambda>"
            fix = f"define it as def {func_name}({arg}: {payload})"
        else:
            fix = f"make it accept ({arg}: {payload})"
        raise ValidationError(
            f"@alien.{decorator}({name!r}): handler {_describe(func)} takes "
            f"{_shape(signature)}, but the trigger calls it with one positional argument, "
            f"a {payload} ({exc}); {fix}",
            field=name,
        ) from None


def _shape(signature: inspect.Signature) -> str:
    """The signature without annotations: the call shape is what is wrong, not the types."""
    empty = inspect.Parameter.empty
    params = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=empty))


def _describe(func: Callable[..., Any]) -> str:
    """How the error names the handler: ``module.qualname``, seen through ``functools.partial``."""
    if isinstance(func, functools.partial):
        return f"partial({_describe(func.func)})"
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(qualname, str):  # an instance with __call__
        qualname = f"{type(func).__qualname__} instance"
        module = type(func).__module__
    else:
        module = getattr(func, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


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
