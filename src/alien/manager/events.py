"""In-process wake-ups: "deployment X changed, look again".

The database is the truth; these events only say *when* to re-read it. A long-poll or an agent
connection subscribes to a key *before* reading the state it waits on, so a change that lands
between the read and the wait still wakes it (no lost wake-ups, no polling loop). Publishers are
usually sync route handlers on a threadpool thread, so ``publish`` is thread-safe and hands the
wake-up to each waiter's own event loop.

One manager process is assumed; running several behind a load balancer would need a shared channel
(e.g. PostgreSQL ``LISTEN/NOTIFY``) feeding ``publish`` — the subscribers would not change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def deployment_key(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


class Subscription:
    def __init__(self, key: str) -> None:
        self.key = key
        self.loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def _notify(self) -> None:
        self._event.set()

    def wake(self) -> None:
        """Wake the waiter as a publish would (from this subscription's loop)."""
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait until notified or ``timeout`` seconds pass; ``True`` when notified."""
        if self._event.is_set():
            self._event.clear()
            return True
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class EventHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}

    @contextmanager
    def subscribe(self, key: str) -> Iterator[Subscription]:
        """Register for ``key`` for the duration of the ``with`` block (call from a coroutine)."""
        sub = Subscription(key)
        with self._lock:
            self._subs.setdefault(key, set()).add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                subs = self._subs.get(key)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subs[key]

    def publish(self, *keys: str) -> None:
        """Wake every subscriber of ``keys``; safe from any thread."""
        with self._lock:
            targets = [sub for key in keys for sub in self._subs.get(key, ())]
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub._notify)
            except RuntimeError:  # that subscriber's loop is closed: it is gone anyway
                continue

    def subscriber_count(self, key: str) -> int:
        with self._lock:
            return len(self._subs.get(key, ()))
