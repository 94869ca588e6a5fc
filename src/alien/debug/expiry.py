"""Reminding the engineer that a debug session is about to expire.

Why: at the session's end the manager drops its tunnel and ``alien debug`` stops the command,
at a moment the engineer did not choose (mid-upload, mid-thought in an interactive shell). The
start line says when the session expires; these reminders say it again when it matters, on
stderr: 5 minutes and 1 minute before. A reminder is skipped when the session was granted with
less than that (and a margin) left, since the start line has just said it. Delays are read off
this machine's clock against the manager's ``expires_at``: a skewed clock moves the reminders,
never the expiry itself, which the manager enforces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

LEADS = (300.0, 60.0)
"""Seconds before the expiry at which the engineer is reminded."""
MARGIN = 15.0
"""A reminder due sooner than this after the session was granted is left to the start line."""


def reminders(
    expires_at: datetime, now: datetime, leads: tuple[float, ...] = LEADS
) -> list[tuple[float, float]]:
    """``(seconds from now, seconds left then)`` of each reminder still worth giving, in order."""
    remaining = (expires_at - now).total_seconds()
    return [
        (remaining - lead, lead)
        for lead in sorted(leads, reverse=True)
        if remaining - lead >= MARGIN
    ]


def reminder_text(session_id: str, left: float, expires_at: datetime) -> str:
    minutes, seconds = divmod(round(left), 60)
    if minutes and not seconds:
        span = f"{minutes} minute" + ("s" if minutes != 1 else "")
    else:
        span = f"{round(left)} s"
    at = expires_at.astimezone(UTC)
    return (
        f"debug session {session_id} expires in {span} (at {at:%H:%M:%S} UTC); "
        "the command is stopped then"
    )


async def remind(
    session_id: str,
    expires_at: datetime | None,
    notify: Callable[[str], None],
    *,
    leads: tuple[float, ...] = LEADS,
) -> None:
    """Tell ``notify`` each reminder at its time; returns after the last (cancel to stop)."""
    if expires_at is None:
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    for delay, left in reminders(expires_at, datetime.now(UTC), leads):
        await asyncio.sleep(max(0.0, start + delay - loop.time()))
        notify(reminder_text(session_id, left, expires_at))
