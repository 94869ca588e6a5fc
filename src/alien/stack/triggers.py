"""Triggers: what makes a function run besides HTTP — a queue message, a storage event, a schedule.

These are the wire models of the manifest's ``config.triggers`` entries (a union discriminated by
``type``). A trigger on a queue or storage also gives the function a binding for it (the manifest
lists it in ``links``); see ``FunctionConfig``. Canonical order of a trigger list: queue triggers,
then storage triggers, then cron triggers, each sorted by the resource id or the cron name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alien.stack.kinds import StorageEvent
from alien.stack.rules import CronSchedule, ResourceId, TriggerName

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class QueueTrigger(BaseModel):
    """Run the function for each message on ``queue``; the message is acked when it returns."""

    model_config = _FROZEN
    type: Literal["queue"] = "queue"
    queue: ResourceId

    @property
    def target(self) -> str:
        return self.queue

    @property
    def key(self) -> str:
        return self.queue


class StorageTrigger(BaseModel):
    """Run the function when objects in ``storage`` are written or deleted."""

    model_config = _FROZEN
    type: Literal["storage"] = "storage"
    storage: ResourceId
    events: tuple[StorageEvent, ...] = tuple(StorageEvent)

    @field_validator("events")
    @classmethod
    def _canonical_events(cls, events: tuple[StorageEvent, ...]) -> tuple[StorageEvent, ...]:
        if not events:
            raise ValueError("events must name at least one of: put, delete")
        return tuple(e for e in StorageEvent if e in events)

    @property
    def target(self) -> str:
        return self.storage

    @property
    def key(self) -> str:
        return self.storage


class CronTrigger(BaseModel):
    """Run the function on a schedule; ``name`` is what ``@alien.on_cron(name)`` handles."""

    model_config = _FROZEN
    type: Literal["cron"] = "cron"
    name: TriggerName
    schedule: CronSchedule

    @property
    def target(self) -> None:
        return None

    @property
    def key(self) -> str:
        return self.name


Trigger = Annotated[QueueTrigger | StorageTrigger | CronTrigger, Field(discriminator="type")]

_TYPE_ORDER = {"queue": 0, "storage": 1, "cron": 2}


def canonical_triggers(triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
    """Refuse duplicates (two triggers with the same type and key) and sort canonically.

    A function consumes a queue once, watches a storage once (list every event in one trigger) and
    names each schedule once: a duplicate is always a mistake, and would make handlers ambiguous.
    """
    seen: set[tuple[str, str]] = set()
    for trigger in triggers:
        ident = (trigger.type, trigger.key)
        if ident in seen:
            what = "cron trigger named" if trigger.type == "cron" else f"{trigger.type} trigger on"
            raise ValueError(f"more than one {what} {trigger.key!r}: keep one")
        seen.add(ident)
    return tuple(sorted(triggers, key=lambda t: (_TYPE_ORDER[t.type], t.key)))
