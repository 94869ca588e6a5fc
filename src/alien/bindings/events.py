"""Storage events: the message a storage backend queues for each put and delete.

The storage trigger runtime consumes these from the bucket's event queue, so the format is a
contract between the two (documented in ``docs/ARCHITECTURE.md``); both sides use this class
rather than building or picking apart JSON by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from alien.errors import ValidationError

EventName = Literal["put", "delete"]


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """``key`` in storage ``storage`` was written (``put``) or removed (``delete``).

    ``size`` is the object's size after a put, or the size it had when it was deleted;
    ``time`` is when the change became visible (UTC).
    """

    event: EventName
    storage: str
    key: str
    size: int
    time: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "event": self.event,
                "storage": self.storage,
                "key": self.key,
                "size": self.size,
                "time": self.time.astimezone(UTC).isoformat(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> StorageEvent:
        """Parse an event body; :class:`ValidationError` if it is not a storage event."""
        try:
            raw = json.loads(data)
            event = raw["event"]
            if event not in ("put", "delete"):
                raise ValueError(f"unknown event {event!r}")
            size = raw["size"]
            if isinstance(size, bool) or not isinstance(size, int):
                raise ValueError("size must be an integer")
            when = datetime.fromisoformat(raw["time"])
            if when.tzinfo is None:
                raise ValueError("time must carry a timezone")
            return cls(event, str(raw["storage"]), str(raw["key"]), size, when)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"not a storage event: {exc}", field="body") from None
