"""Reminders before a debug session expires: which are given, when, and what they say."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from alien.debug.expiry import MARGIN, remind, reminder_text, reminders

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_a_long_session_is_reminded_five_minutes_and_one_minute_before() -> None:
    assert reminders(NOW + timedelta(hours=1), NOW) == [(3300.0, 300.0), (3540.0, 60.0)]


def test_a_reminder_due_at_once_is_left_to_the_start_line() -> None:
    just_enough = NOW + timedelta(seconds=300 + MARGIN)
    assert [left for _, left in reminders(just_enough, NOW)] == [300.0, 60.0]
    too_close = NOW + timedelta(seconds=300 + MARGIN - 1)
    assert [left for _, left in reminders(too_close, NOW)] == [60.0]
    assert reminders(NOW + timedelta(seconds=60 + MARGIN - 1), NOW) == []
    assert reminders(NOW - timedelta(seconds=5), NOW) == []  # already expired


def test_the_text_names_the_session_the_time_left_and_the_clock_time() -> None:
    at = NOW + timedelta(minutes=5)
    assert reminder_text("dbg_1", 300.0, at) == (
        "debug session dbg_1 expires in 5 minutes (at 12:05:00 UTC); the command is stopped then"
    )
    assert "expires in 1 minute (" in reminder_text("dbg_1", 60.0, at)
    assert "expires in 90 s (" in reminder_text("dbg_1", 90.0, at)


async def test_reminders_are_told_at_their_time_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("alien.debug.expiry.MARGIN", 0.2)
    told: list[tuple[float, str]] = []
    begin = time.monotonic()
    expires = datetime.now(UTC) + timedelta(seconds=1.0)

    def notify(line: str) -> None:
        told.append((time.monotonic() - begin, line))

    await asyncio.wait_for(remind("dbg_2", expires, notify, leads=(0.6, 0.3)), timeout=5)
    assert [line.startswith("debug session dbg_2 expires in ") for _, line in told] == [True] * 2
    first, second = (at for at, _ in told)
    # Not early; late only by what a loaded machine may add to a sleep.
    assert 0.3 < first < 1.5 and 0.15 < second - first < 1.2


async def test_no_expiry_means_no_reminder() -> None:
    await asyncio.wait_for(remind("dbg_3", None, lambda line: None), timeout=1)
