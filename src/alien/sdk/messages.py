"""What trigger handlers receive: a queue message, a storage event, a cron tick.

Plain frozen dataclasses, the same on every platform, so a handler can be unit-tested by building
one by hand. Delivery details a handler must not act on (receipts, the events queue behind a
storage trigger) stay in the runtime: acknowledging is the runtime's job, done when the handler
returns. ``StorageEvent`` is the bindings' own event class (``alien.bindings.events``): the
storage backend writes exactly what the handler reads, with no second model to drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alien.bindings.events import StorageEvent

__all__ = ["CronTick", "QueueMessage", "StorageEvent"]


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One delivery of a message from ``queue``. ``attempts`` is 1 on the first delivery."""

    queue: str
    id: str
    body: bytes
    attempts: int
    sent_at: datetime

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON (``queue.send(json.dumps(...))`` on the other side)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class CronTick:
    """The cron trigger ``name`` fired for the time ``scheduled_at`` (UTC).

    ``fired_at`` is when the runtime actually called the handler; the difference is the lag.
    """

    name: str
    schedule: str
    scheduled_at: datetime
    fired_at: datetime
