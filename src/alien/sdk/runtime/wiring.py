"""Match the triggers the platform configured with the handlers the app registered.

The stack decides *whether* a trigger exists (``ALIEN_TRIGGERS``); app code decides *what runs*
(the decorators). A configured trigger without a handler is an error at start-up, not a queue
that silently fills up; a handler without a trigger is only a warning (a handler may well be
shared by several functions' code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from alien.bindings.base import Message, Queue
from alien.bindings.env import Binding, Bindings, parse_binding
from alien.errors import BindingError, ValidationError
from alien.sdk.messages import QueueMessage, StorageEvent
from alien.sdk.registry import HandlerKind, HandlerRegistry
from alien.sdk.runtime.config import QueueTrigger, StorageTrigger, Trigger
from alien.sdk.runtime.loops import CronLoop, QueueConsumer

log = logging.getLogger("alien.runtime")

Loop = QueueConsumer | CronLoop

_DECORATOR = {
    HandlerKind.QUEUE: "on_queue_message",
    HandlerKind.STORAGE: "on_storage_event",
    HandlerKind.CRON: "on_cron",
}


def _key(trigger: Trigger) -> tuple[HandlerKind, str]:
    if isinstance(trigger, QueueTrigger):
        return HandlerKind.QUEUE, trigger.queue
    if isinstance(trigger, StorageTrigger):
        return HandlerKind.STORAGE, trigger.storage
    return HandlerKind.CRON, trigger.name


def _check_handlers(
    function: str, triggers: tuple[Trigger, ...], registry: HandlerRegistry
) -> None:
    """Every configured trigger needs a handler; name all that are missing at once."""
    missing = [key for key in map(_key, triggers) if registry.get(*key) is None]
    if missing:
        fixes = ", ".join(f"@alien.{_DECORATOR[kind]}({name!r})" for kind, name in missing)
        raise ValidationError(
            f"function {function} has triggers without a handler: decorate one with {fixes}",
            field="ALIEN_TRIGGERS",
        )


def queue_message(queue: str, message: Message) -> QueueMessage:
    return QueueMessage(
        queue=queue,
        id=message.id,
        body=message.body,
        attempts=message.attempts,
        sent_at=message.sent_at,
    )


def storage_event(trigger: StorageTrigger, message: Message) -> StorageEvent | None:
    """Decode one event of the storage's events queue; ``None`` if the trigger ignores it."""
    event = StorageEvent.from_json(message.body)
    return event if event.event in trigger.events else None


def open_events_queue(binding: Binding) -> Queue:
    """The queue the platform feeds with ``binding``'s object events (ARCHITECTURE.md).

    A storage binding's ``events`` names a queue of the same platform; without it the platform
    did not enable events for this storage and a storage trigger cannot work.
    """
    events = getattr(binding.config, "events", None)
    if not events:
        raise BindingError(
            f"storage {binding.id!r} has no events queue in its binding: the platform must enable "
            "events for a storage that a function has a storage trigger on",
            field=binding.id,
        )
    entry = events if isinstance(events, dict) else {"path": str(events)}
    queue = parse_binding(binding.id, {**entry, "kind": "queue", "platform": binding.platform})
    opened = queue.open()
    assert isinstance(opened, Queue)
    return opened


def build_loops(
    function: str,
    triggers: tuple[Trigger, ...],
    registry: HandlerRegistry,
    bindings: Bindings,
) -> list[Loop]:
    """One loop per configured trigger, each bound to its registered handler."""
    _check_handlers(function, triggers, registry)
    loops: list[Loop] = []
    for trigger in triggers:
        handler = registry.get(*_key(trigger))
        assert handler is not None
        if isinstance(trigger, QueueTrigger):
            queue = bindings.require(trigger.queue, "queue").open()
            assert isinstance(queue, Queue)
            convert: Callable[[Message], object | None] = partial(queue_message, trigger.queue)
            loops.append(QueueConsumer(f"queue {trigger.queue}", queue, handler, convert))
        elif isinstance(trigger, StorageTrigger):
            events = open_events_queue(bindings.require(trigger.storage, "storage"))
            convert = partial(storage_event, trigger)
            loops.append(QueueConsumer(f"storage {trigger.storage}", events, handler, convert))
        else:
            loops.append(CronLoop(trigger.name, trigger.schedule, handler))
    configured = set(map(_key, triggers))
    for kind in _DECORATOR:
        for unused in registry.of_kind(kind):
            if (kind, unused.name) not in configured:
                log.warning(
                    "%s handler %s for %r never runs: function %s has no such trigger",
                    kind,
                    unused.qualname,
                    unused.name,
                    function,
                )
    return loops
