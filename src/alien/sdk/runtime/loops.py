"""The trigger loops: consume a queue (queue and storage triggers) and fire on a schedule (cron).

Each loop runs until the ``stopping`` event is set, then returns after the handler in progress
finishes: that is the runtime's graceful stop for triggers. Loops catch everything a receive or a
handler can raise; a broken queue pauses the loop briefly instead of ending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from croniter import croniter

from alien.bindings.base import Message, Queue
from alien.sdk.messages import CronTick
from alien.sdk.registry import Handler
from alien.sdk.runtime.dispatch import dispatch

log = logging.getLogger("alien.runtime")

Convert = Callable[[Message], object | None]
"""Turn a delivered message into the handler's payload; ``None`` means "not for this handler"."""


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stopping`` is set first; ``True`` if it was."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stopping.wait()
    return stopping.is_set()


class QueueConsumer:
    """Long-poll a queue and hand each message to a handler; ack only when the handler returns.

    A message whose handler raised is left alone: the queue makes it visible again after its
    visibility timeout and delivers it again (``attempts`` + 1). One message at a time, so a
    slow handler cannot hold a batch of received messages past their timeout.
    """

    def __init__(
        self,
        label: str,
        queue: Queue,
        handler: Handler,
        convert: Convert,
        *,
        wait: float = 1.0,
        error_pause: float = 1.0,
    ) -> None:
        self.label = label
        self.queue = queue
        self.handler = handler
        self.convert = convert
        self.wait = wait
        self.error_pause = error_pause

    async def run(self, stopping: asyncio.Event) -> None:
        # ``wait`` bounds how long a stop waits for an idle long poll to return.
        while not stopping.is_set():
            try:
                messages = await self.queue.aio.receive(max_messages=1, wait=self.wait)
            except Exception:
                log.exception("%s: receive failed; retrying in %gs", self.label, self.error_pause)
                await pause(stopping, self.error_pause)
                continue
            for message in messages:
                await self._handle(message)

    async def _handle(self, message: Message) -> None:
        what = f"{self.label} message {message.id} (attempt {message.attempts})"
        try:
            payload = self.convert(message)
        except Exception as exc:
            # It would fail the same way on every delivery: drop it rather than loop forever.
            log.error("%s is malformed and is dropped: %s", what, exc)
            payload = None
        if payload is not None and not await dispatch(self.handler, payload, what):
            return
        try:
            if not await self.queue.aio.ack(message):
                log.warning(
                    "%s was acked after its visibility timeout; it will be delivered again", what
                )
        except Exception:
            log.exception("%s: ack failed; it will be delivered again", what)


def _now() -> datetime:
    return datetime.now(UTC)


class CronLoop:
    """Call a handler at each time a cron schedule names (UTC).

    Runs are never overlapped: if a run outlasts the interval, the times it covered are skipped
    (and logged), the way cron treats a busy job, rather than queued up to fire back to back.
    """

    def __init__(
        self,
        name: str,
        schedule: str,
        handler: Handler,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.handler = handler
        self.clock = clock

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time strictly after ``moment``."""
        nxt: datetime = croniter(self.schedule, moment).get_next(datetime)
        return nxt

    async def run(self, stopping: asyncio.Event) -> None:
        due = self.next_after(self.clock())
        while True:
            # Sleep in steps: the wall clock, not the loop's monotonic clock, decides when.
            while (delay := (due - self.clock()).total_seconds()) > 0:
                if await pause(stopping, delay):
                    return
            if stopping.is_set():
                return
            tick = CronTick(self.name, self.schedule, scheduled_at=due, fired_at=self.clock())
            await dispatch(self.handler, tick, f"cron {self.name} tick {due.isoformat()}")
            finished = self.clock()
            following = self.next_after(due)
            if following <= finished:
                skipped_until = self.next_after(finished)
                log.warning(
                    "cron %s: run for %s lasted past later times; next run at %s",
                    self.name,
                    due.isoformat(),
                    skipped_until.isoformat(),
                )
                following = skipped_until
            due = following
