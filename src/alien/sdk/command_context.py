"""What a command handler knows about the delivery it is running: :class:`CommandContext`.

A handler asks for it by annotating one parameter ``alien.CommandContext`` (any name). It exists so
handlers can be **idempotent** (the same ``command_id`` comes back on every attempt, ``attempt``
says which one this is) and **stop in time** (``deadline``/``remaining()``, and a cancellation
signal the runtime raises when the command is cancelled, its lease is lost, or its deadline
passes). ``traceparent`` continues the caller's W3C trace in the handler's own telemetry.

Cancellation is cooperative and works from both worlds the handler may live in: an async handler
awaits :meth:`CommandContext.wait_cancelled` (or is simply cancelled by the runtime); a sync
handler runs in a worker thread and checks :attr:`CommandContext.cancelled`,
:meth:`CommandContext.raise_if_cancelled` or blocks on
:meth:`CommandContext.wait_cancelled_blocking`. The flag is set from any thread, hence the locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from alien.errors import AlienError
from alien.protocol.command_messages import (
    COMMAND_CANCELLED,
    HANDLER_TIMEOUT,
    MAX_ATTEMPTS_LIMIT,
    CommandEnvelope,
    CommandId,
    LeaseId,
    Traceparent,
)
from alien.protocol.wire import Timestamp, WireModel, parse

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; injectable so tests control time."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandCancelled(AlienError):
    """Raised by :meth:`CommandContext.raise_if_cancelled` once the command must stop.

    ``code`` is ``COMMAND_CANCELLED`` (someone cancelled it, or the runtime stopped) or
    ``HANDLER_TIMEOUT`` (its deadline passed); the runtime reports the command with that code, so
    a handler may let this propagate and need not catch it.
    """

    code = COMMAND_CANCELLED
    status = 409


class _Delivery(WireModel):
    """The validated facts of one delivery (ids checked so a response can always be built)."""

    command_id: CommandId
    lease_id: LeaseId
    deadline: Timestamp
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPTS_LIMIT)
    max_attempts: int = Field(default=1, ge=1, le=MAX_ATTEMPTS_LIMIT)
    traceparent: Traceparent | None = None

    @model_validator(mode="after")
    def _check(self) -> _Delivery:
        if self.attempt > self.max_attempts:
            raise ValueError("attempt cannot exceed max_attempts")
        return self


class CommandContext:
    """One delivery of a command, plus its cancellation signal.

    Built by the runtime (usually :meth:`from_envelope`); bad ids or times raise
    ``ValidationError`` naming the field. ``cancel()`` is the runtime's side of the signal.
    """

    def __init__(
        self,
        *,
        command_id: str,
        lease_id: str,
        deadline: datetime,
        attempt: int = 1,
        max_attempts: int = 1,
        traceparent: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._delivery = parse(
            _Delivery,
            {
                "command_id": command_id,
                "lease_id": lease_id,
                "deadline": deadline,
                "attempt": attempt,
                "max_attempts": max_attempts,
                "traceparent": traceparent,
            },
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._cancel_code = COMMAND_CANCELLED
        self._cancel_reason = ""
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @classmethod
    def from_envelope(cls, envelope: CommandEnvelope, *, clock: Clock = utc_now) -> CommandContext:
        """The context of the delivery ``envelope`` describes."""
        return cls(
            command_id=envelope.id,
            lease_id=envelope.lease_id,
            deadline=envelope.deadline,
            attempt=envelope.attempt,
            max_attempts=envelope.max_attempts,
            traceparent=envelope.traceparent,
            clock=clock,
        )

    # --- the delivery ------------------------------------------------------------------------

    @property
    def command_id(self) -> str:
        """Stable across attempts: use it as the idempotency key of the handler's side effects."""
        return self._delivery.command_id

    @property
    def lease_id(self) -> str:
        return self._delivery.lease_id

    @property
    def attempt(self) -> int:
        """Which delivery this is, from 1; above 1 an earlier attempt may have done some work."""
        return self._delivery.attempt

    @property
    def max_attempts(self) -> int:
        return self._delivery.max_attempts

    @property
    def deadline(self) -> datetime:
        """When the command expires (aware, UTC); the handler is stopped then."""
        return self._delivery.deadline

    @property
    def traceparent(self) -> str | None:
        """The caller's W3C ``traceparent``, to continue its trace; ``None`` if it sent none."""
        return self._delivery.traceparent

    def remaining(self) -> float:
        """Seconds left before the deadline (0.0 once it has passed)."""
        return max(0.0, (self.deadline - self._clock()).total_seconds())

    # --- cancellation ------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether the handler should stop now (cancelled, lease lost, or deadline passed)."""
        return self._cancelled.is_set()

    @property
    def cancel_code(self) -> str | None:
        """``COMMAND_CANCELLED`` or ``HANDLER_TIMEOUT`` once cancelled, else ``None``."""
        return self._cancel_code if self.cancelled else None

    @property
    def cancel_reason(self) -> str | None:
        return self._cancel_reason if self.cancelled else None

    def cancel(self, reason: str = "the command was cancelled") -> bool:
        """Raise the signal (from any thread). ``False`` if it was already raised."""
        return self._signal(COMMAND_CANCELLED, reason)

    def expire(self) -> bool:
        """Raise the signal because the deadline passed (the runtime calls this)."""
        return self._signal(HANDLER_TIMEOUT, "the command's deadline passed")

    def raise_if_cancelled(self) -> None:
        """Raise :class:`CommandCancelled` if the handler should stop; else do nothing."""
        if self.cancelled:
            raise CommandCancelled(self._cancel_reason, code=self._cancel_code)

    async def wait_cancelled(self) -> None:
        """Return once the signal is raised (immediately if it already was)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._cancelled.is_set():
                return
            self._waiters.append(entry)
        try:
            await future
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def wait_cancelled_blocking(self, timeout: float | None = None) -> bool:
        """For sync handlers: block up to ``timeout`` seconds; ``True`` if the signal is raised.

        Use it instead of ``time.sleep`` between steps so the handler wakes at once when told to
        stop.
        """
        return self._cancelled.wait(timeout)

    def _signal(self, code: str, reason: str) -> bool:
        with self._lock:
            if self._cancelled.is_set():
                return False
            self._cancel_code = code
            self._cancel_reason = reason
            self._cancelled.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # A closed loop raises RuntimeError: nobody is waiting on it any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)
        return True

    def __repr__(self) -> str:
        state = f"cancelled={self._cancel_code}" if self.cancelled else "running"
        return (
            f"CommandContext({self.command_id}, attempt {self.attempt}/{self.max_attempts}, "
            f"deadline {self.deadline.isoformat()}, {state})"
        )


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
