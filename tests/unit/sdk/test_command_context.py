"""``CommandContext``: the delivery's facts, the clock, and the cross-thread cancellation signal."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alien.errors import ValidationError
from alien.protocol.command_messages import COMMAND_CANCELLED, HANDLER_TIMEOUT, CommandEnvelope
from alien.protocol.wire import parse
from alien.sdk.command_context import CommandCancelled, CommandContext

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def context(**overrides: object) -> CommandContext:
    fields: dict[str, object] = {
        "command_id": "cmd_1",
        "lease_id": "lse_1",
        "deadline": NOW + timedelta(seconds=30),
        "clock": lambda: NOW,
    }
    return CommandContext(**{**fields, **overrides})  # type: ignore[arg-type]


def test_from_envelope_carries_the_delivery() -> None:
    envelope = parse(
        CommandEnvelope,
        {
            "id": "cmd_abc",
            "deployment_id": "dep_1",
            "command": "export",
            "params": {},
            "lease_id": "lse_xyz",
            "lease_expires_at": NOW + timedelta(seconds=10),
            "attempt": 2,
            "max_attempts": 3,
            "deadline": NOW + timedelta(seconds=60),
            "response_url": "https://manager.example/v1/commands/cmd_abc/response",
            "traceparent": TRACEPARENT,
        },
    )
    ctx = CommandContext.from_envelope(envelope, clock=lambda: NOW)
    assert (ctx.command_id, ctx.lease_id, ctx.attempt, ctx.max_attempts) == (
        "cmd_abc",
        "lse_xyz",
        2,
        3,
    )
    assert ctx.deadline == NOW + timedelta(seconds=60)
    assert ctx.traceparent == TRACEPARENT
    assert ctx.remaining() == 60.0
    assert not ctx.cancelled
    assert "cmd_abc" in repr(ctx) and "attempt 2/3" in repr(ctx)


def test_deadline_is_normalised_to_utc_and_remaining_never_goes_negative() -> None:
    plus_two = timezone(timedelta(hours=2))
    ctx = context(deadline=datetime(2030, 1, 1, 14, 0, 5, tzinfo=plus_two))
    assert ctx.deadline == NOW + timedelta(seconds=5)
    assert ctx.deadline.tzinfo == UTC
    assert ctx.remaining() == 5.0
    late = context(deadline=NOW - timedelta(seconds=1))
    assert late.remaining() == 0.0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"command_id": "nope"}, "command_id"),
        ({"lease_id": "cmd_1"}, "lease_id"),
        ({"deadline": datetime(2030, 1, 1)}, "deadline"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": 4, "max_attempts": 3}, None),
        ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, "traceparent"),
        ({"traceparent": "not-a-traceparent"}, "traceparent"),
    ],
)
def test_bad_delivery_facts_are_refused(overrides: dict[str, object], field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        context(**overrides)
    assert info.value.field == field


def test_cancel_sets_the_flag_once_and_the_first_reason_wins() -> None:
    ctx = context()
    assert ctx.cancel_code is None and ctx.cancel_reason is None
    ctx.raise_if_cancelled()  # nothing to raise yet
    assert ctx.cancel("operator asked") is True
    assert ctx.expire() is False
    assert ctx.cancel("again") is False
    assert ctx.cancelled
    assert (ctx.cancel_code, ctx.cancel_reason) == (COMMAND_CANCELLED, "operator asked")
    with pytest.raises(CommandCancelled, match="operator asked") as info:
        ctx.raise_if_cancelled()
    assert info.value.code == COMMAND_CANCELLED


def test_expire_reports_a_timeout() -> None:
    ctx = context()
    assert ctx.expire() is True
    with pytest.raises(CommandCancelled, match="deadline") as info:
        ctx.raise_if_cancelled()
    assert info.value.code == HANDLER_TIMEOUT


async def test_wait_cancelled_wakes_when_another_thread_cancels() -> None:
    ctx = context()
    waiting = asyncio.create_task(ctx.wait_cancelled())
    await asyncio.sleep(0)  # let the waiter register
    assert not waiting.done()
    canceller = threading.Thread(target=ctx.cancel, args=("from a thread",))
    canceller.start()
    await asyncio.wait_for(waiting, timeout=5)
    canceller.join()
    assert ctx.cancel_reason == "from a thread"
    await asyncio.wait_for(ctx.wait_cancelled(), timeout=1)  # already cancelled: returns at once


async def test_an_abandoned_waiter_is_forgotten() -> None:
    ctx = context()
    waiting = asyncio.create_task(ctx.wait_cancelled())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert ctx._waiters == []
    assert ctx.cancel() is True


def test_wait_cancelled_blocking_times_out_or_wakes() -> None:
    ctx = context()
    assert ctx.wait_cancelled_blocking(timeout=0.01) is False
    canceller = threading.Thread(target=ctx.cancel)
    canceller.start()
    assert ctx.wait_cancelled_blocking(timeout=5) is True
    canceller.join()


def test_cancelling_after_the_waiters_loop_closed_is_harmless() -> None:
    ctx = context()
    loop = asyncio.new_event_loop()
    waiting = loop.create_task(ctx.wait_cancelled())
    loop.run_until_complete(asyncio.sleep(0))
    assert not waiting.done()
    loop.close()
    assert ctx.cancel() is True
