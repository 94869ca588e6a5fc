"""Which agents hold a live channel to this manager process right now (in memory only).

This is presence, nothing more: it answers "is deployment X connected?" for the API. Nothing that
must survive a restart lives here — the desired release is in the database and is sent again to an
agent when it reconnects.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class AgentRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: Counter[str] = Counter()

    @contextmanager
    def channel(self, deployment_id: str) -> Iterator[None]:
        """Mark ``deployment_id`` connected during the ``with`` block (WebSocket or long-poll)."""
        with self._lock:
            self._channels[deployment_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._channels[deployment_id] -= 1
                if self._channels[deployment_id] <= 0:
                    del self._channels[deployment_id]

    def is_connected(self, deployment_id: str) -> bool:
        with self._lock:
            return self._channels.get(deployment_id, 0) > 0
