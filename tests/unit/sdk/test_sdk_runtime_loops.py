"""Trigger loops against real local queues: ack on success, redelivery on failure, cron ticks."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alien.bindings.events import StorageEvent
from alien.bindings.local.queue import LocalQueue
from alien.sdk.messages import CronTick, QueueMessage
from alien.sdk.registry import HandlerKind, HandlerRegistry
from alien.sdk.runtime.config import StorageTrigger
from alien.sdk.runtime.loops import CronLoop, QueueConsumer
from alien.sdk.runtime.wiring import queue_message, storage_event


async def _run_until(loop: QueueConsumer | CronLoop, done: asyncio.Event, timeout: float = 10):
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.run(stopping))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)  # a stop is prompt and finishes the handler in flight


def _consumer(queue: LocalQueue, handler, convert=None) -> QueueConsumer:  # type: ignore[no-untyped-def]
    registered = HandlerRegistry().add(HandlerKind.QUEUE, "tasks", handler)
    return QueueConsumer(
        "queue tasks", queue, registered, convert or (lambda m: queue_message("tasks", m)), wait=0.2
    )


async def test_a_message_is_acked_only_after_the_handler_returns(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.db", visibility_timeout=30)
    queue.send('{"n": 1}')
    got: list[QueueMessage] = []
    done = asyncio.Event()

    async def handler(message: QueueMessage) -> None:
        got.append(message)
        done.set()

    await _run_until(_consumer(queue, handler), done)
    assert got[0].json() == {"n": 1} and got[0].queue == "tasks" and got[0].attempts == 1
    await asyncio.sleep(0.05)
    assert queue.receive(wait=0) == []  # acked: gone for good


async def test_a_failing_handler_gets_the_message_again_after_the_visibility_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = LocalQueue(tmp_path / "q.db", visibility_timeout=0.3)
    queue.send("secret-payload")
    attempts: list[int] = []
    done = asyncio.Event()

    def handler(message: QueueMessage) -> None:  # sync handlers work the same
        attempts.append(message.attempts)
        if message.attempts == 1:
            raise RuntimeError("transient failure")
        done.set()

    with caplog.at_level(logging.ERROR, logger="alien.runtime"):
        await _run_until(_consumer(queue, handler), done)
    assert attempts == [1, 2]
    assert "failed on queue tasks message" in caplog.text and "attempt 1" in caplog.text
    assert "secret-payload" not in caplog.text  # payloads are never logged
    assert queue.receive(wait=0) == []


def _event(kind: str, key: str) -> str:
    return StorageEvent(kind, "data", key, 3, datetime.now(UTC)).to_json()  # type: ignore[arg-type]


async def test_storage_events_are_decoded_filtered_and_malformed_ones_dropped(
    tmp_path: Path,
) -> None:
    events = LocalQueue(tmp_path / "events.db")
    for body in ("not json", _event("delete", "a"), _event("put", "b")):
        events.send(body)
    trigger = StorageTrigger(type="storage", storage="data", events=frozenset({"put"}))
    got: list[StorageEvent] = []
    done = asyncio.Event()

    def handler(event: StorageEvent) -> None:
        got.append(event)
        done.set()

    consumer = _consumer(events, handler, convert=lambda m: storage_event(trigger, m))
    await _run_until(consumer, done)
    await asyncio.sleep(0.1)
    assert [(e.event, e.key) for e in got] == [("put", "b")]  # delete filtered out
    assert events.receive(wait=0) == []  # all three consumed: none would ever succeed later


def test_cron_next_time_supports_five_and_six_fields() -> None:
    handler = HandlerRegistry().add(HandlerKind.CRON, "n", lambda tick: None)
    moment = datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert CronLoop("n", "0 3 * * *", handler).next_after(moment) == moment.replace(
        hour=3, microsecond=0
    )
    every_second = CronLoop("n", "* * * * * *", handler)
    assert every_second.next_after(moment) == moment.replace(second=1, microsecond=0)
    assert CronLoop("n", "* * * * * 30", handler).next_after(moment).second == 30


async def test_cron_fires_every_second_on_the_second() -> None:
    ticks: list[CronTick] = []
    done = asyncio.Event()

    async def handler(tick: CronTick) -> None:
        ticks.append(tick)
        if len(ticks) == 2:
            done.set()

    registered = HandlerRegistry().add(HandlerKind.CRON, "every", handler)
    await _run_until(CronLoop("every", "* * * * * *", registered), done, timeout=5)
    first, second = ticks
    assert first.name == "every" and first.scheduled_at.microsecond == 0
    assert (second.scheduled_at - first.scheduled_at).total_seconds() == 1
    assert first.fired_at >= first.scheduled_at


class _Clock:
    """Wall time that runs at real speed from ``start``, plus jumps a test adds."""

    def __init__(self, start: datetime) -> None:
        self.start, self.began, self.jumped = start, time.monotonic(), timedelta()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began) + self.jumped


async def test_a_cron_run_that_overruns_skips_the_times_it_covered() -> None:
    clock = _Clock(datetime(2026, 1, 1, 0, 0, 0, 900_000, tzinfo=UTC))
    scheduled: list[int] = []
    done = asyncio.Event()

    def handler(tick: CronTick) -> None:
        scheduled.append(tick.scheduled_at.second)
        clock.jumped += timedelta(seconds=3)  # this run "takes" three seconds
        if len(scheduled) == 2:
            done.set()

    registered = HandlerRegistry().add(HandlerKind.CRON, "busy", handler)
    await _run_until(CronLoop("busy", "* * * * * *", registered, clock=clock), done, timeout=5)
    assert scheduled == [1, 5]  # 2, 3 and 4 were skipped, not fired back to back
