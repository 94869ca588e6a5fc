"""Queue contract: every backend must pass these unchanged."""

from __future__ import annotations

import queue as queue_module
import threading
import time
from typing import Any

import pytest
from contract_support import (
    drain,
    join_all,
    new_channel,
    new_event,
    queue_consumer,
    queue_producer,
    run_processes,
)

from alien.bindings.base import Message, Queue
from alien.bindings.validate import MAX_VALUE_BYTES
from alien.errors import ValidationError


def test_send_receive_ack(queue: Queue) -> None:
    message_id = queue.send("hello")
    assert isinstance(message_id, str) and message_id
    [message] = queue.receive()
    assert isinstance(message, Message)
    assert (message.id, message.body, message.text, message.attempts) == (
        message_id,
        b"hello",
        "hello",
        1,
    )
    assert message.sent_at.tzinfo is not None
    assert queue.ack(message) is True
    assert queue.ack(message.receipt) is False  # already acked
    assert queue.receive() == []


def test_bytes_body_and_fifo_batches(queue: Queue) -> None:
    ids = [queue.send(bytes([i])) for i in range(5)]
    first = queue.receive(max_messages=3)
    second = queue.receive(max_messages=10)
    assert [m.id for m in first + second] == ids
    assert [m.body for m in first + second] == [bytes([i]) for i in range(5)]


def test_received_message_is_hidden_until_its_timeout(queue: Queue) -> None:
    queue.send("job")
    [first] = queue.receive(visibility_timeout=0.3)
    assert queue.receive() == []  # in flight: nobody else gets it
    started = time.monotonic()
    [again] = queue.receive(wait=5)  # long poll until it reappears
    assert time.monotonic() - started >= 0.2
    assert again.id == first.id
    assert again.attempts == 2
    assert again.receipt != first.receipt
    assert queue.ack(first) is False  # stale receipt: no-op, reported
    assert queue.change_visibility(first, 0) is False
    assert queue.ack(again) is True


def test_change_visibility(queue: Queue) -> None:
    queue.send("job")
    [message] = queue.receive(visibility_timeout=60)
    assert queue.change_visibility(message, 0) is True  # release at once
    [again] = queue.receive(visibility_timeout=0.2)
    assert again.attempts == 2
    assert queue.change_visibility(again, 60) is True  # extend past the original 0.2 s
    assert queue.receive(wait=0.5) == []
    assert queue.ack(again) is True


def test_delay(queue: Queue) -> None:
    queue.send("later", delay=0.3)
    queue.send("now")
    assert [m.text for m in queue.receive(max_messages=10)] == ["now"]
    started = time.monotonic()
    [late] = queue.receive(wait=5)
    assert late.text == "later"
    assert time.monotonic() - started >= 0.2


def test_long_poll_wakes_on_send(queue: Queue) -> None:
    ready = threading.Event()

    def send_later() -> None:
        ready.wait(5)
        time.sleep(0.1)  # let receive() reach its wait; if it has not, the test still holds
        queue.send("woke")

    thread = threading.Thread(target=send_later)
    thread.start()
    started = time.monotonic()
    ready.set()
    messages = queue.receive(wait=10)
    elapsed = time.monotonic() - started
    thread.join()
    assert [m.text for m in messages] == ["woke"]
    assert elapsed < 2, f"long poll took {elapsed:.2f}s after the send"


def test_long_poll_times_out_empty(queue: Queue) -> None:
    started = time.monotonic()
    assert queue.receive(wait=0.3) == []
    assert 0.25 <= time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda q: q.send(123), "body"),
        (lambda q: q.send(b"x" * (MAX_VALUE_BYTES + 1)), "body"),
        (lambda q: q.send("x", delay=-1), "delay"),
        (lambda q: q.send("x", delay=901), "delay"),
        (lambda q: q.receive(max_messages=0), "max_messages"),
        (lambda q: q.receive(max_messages=11), "max_messages"),
        (lambda q: q.receive(visibility_timeout=-1), "visibility_timeout"),
        (lambda q: q.receive(wait=21), "wait"),
        (lambda q: q.receive(wait=float("nan")), "wait"),
        (lambda q: q.ack(""), "receipt"),
        (lambda q: q.ack(None), "receipt"),
        (lambda q: q.change_visibility("r", -5), "timeout"),
    ],
)
def test_bad_arguments(queue: Queue, call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        call(queue)
    assert err.value.field == field


def test_unknown_receipt(queue: Queue) -> None:
    assert queue.ack("rcpt_unknown") is False
    assert queue.change_visibility("rcpt_unknown", 10) is False


async def test_async_view(queue: Queue) -> None:
    await queue.aio.send("a")
    [message] = await queue.aio.receive(wait=1)
    assert message.text == "a"
    assert await queue.aio.ack(message) is True


def test_processes_receive_each_message_exactly_once(binding: Any) -> None:
    """Producers and consumers in separate processes: every message delivered once."""
    entry = binding("queue")
    producers, per_producer, consumers = 2, 60, 3
    out = new_channel()
    stop = new_event()
    consuming = run_processes(queue_consumer, [(entry, out, stop)] * consumers)
    producing = run_processes(queue_producer, [(entry, p, per_producer) for p in range(producers)])
    try:
        join_all(producing)
        received = drain(out, producers * per_producer)
    finally:
        stop.set()
        join_all(consuming)
    expected = {f"{p}:{i}" for p in range(producers) for i in range(per_producer)}
    assert sorted(received) == sorted(expected)  # nothing missing, nothing twice
    with pytest.raises(queue_module.Empty):  # consumers have exited: all they sent is here
        out.get(timeout=0.2)
