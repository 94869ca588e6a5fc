"""The remote-command lifecycle as a pure state machine (the clock is an argument).

States (``CommandState``)::

    pending ──dispatch──▶ dispatched ──acknowledge (its lease id)──▶ leased ──respond──▶ succeeded
       │  ◀──lease lost (attempt+1)── │                                 │ renew          │ failed
       └──────────────lease (pull model: a fresh lease)────────────────▶│
    any non-terminal ──deadline passed──▶ expired      any non-terminal ──cancel──▶ cancelled
    dispatched/leased ──lease lost on the last attempt──▶ failed (MAX_ATTEMPTS)

* ``dispatch`` offers the command over the agent's open connection (or to a direct invoke) with a
  lease id, and ``acknowledge`` is the receiver taking that offer — only a dispatched command,
  only under the offer's lease id. ``lease`` hands a pending command out under a fresh lease the
  caller (the manager) made: the pull model. A pending command is never taken by an
  acknowledgement, so a worker whose lease was lost cannot revive it, and a command the manager
  holds back (awaiting approval, access suspended) is never taken by naming it. Either way the
  lease is time-bounded and renewable (``renew``), and never outlives the deadline.
* Time-driven transitions are applied by :func:`tick`, and every operation ticks first, so the
  outcome is a function of ``(record, now)`` only — never of whether a sweeper happened to run.
* A response is accepted only for the current lease. A response for an old lease, a second
  response for the same lease, or any change to a finished command is refused with
  :class:`CommandRefused` whose ``code`` says why, so nothing is ever applied twice.
* Terminal states (succeeded, failed, expired, cancelled) are absorbing and ``ended_at`` is set
  exactly once.

The messages (envelope, response, error codes, name rules) live in
:mod:`alien.protocol.command_messages` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from alien.errors import ValidationError
from alien.protocol.command_messages import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FINISHED,
    COMMAND_NAME_PATTERN,
    COMMAND_NOT_FOUND,
    DUPLICATE_RESPONSE,
    ERROR_CODES,
    HANDLER_ERROR,
    HANDLER_TIMEOUT,
    INVALID_PARAMS,
    MAX_ATTEMPTS,
    MAX_ATTEMPTS_LIMIT,
    MAX_INLINE_BYTES,
    STALE_LEASE,
    TARGET_AMBIGUOUS,
    TARGET_REQUIRED,
    UNKNOWN_COMMAND,
    BlobRef,
    CommandEnvelope,
    CommandError,
    CommandId,
    CommandName,
    CommandResponse,
    DeploymentId,
    LeaseId,
    fits_inline,
    json_size,
    validate_command_name,
)
from alien.protocol.errors import CommandRefused, IllegalTransition
from alien.protocol.wire import Timestamp, WireModel, parse

__all__ = [
    "COMMAND_CANCELLED",
    "COMMAND_EXPIRED",
    "COMMAND_FINISHED",
    "COMMAND_NAME_PATTERN",
    "COMMAND_NOT_FOUND",
    "DUPLICATE_RESPONSE",
    "ERROR_CODES",
    "HANDLER_ERROR",
    "HANDLER_TIMEOUT",
    "INVALID_PARAMS",
    "MAX_ATTEMPTS",
    "MAX_ATTEMPTS_LIMIT",
    "MAX_INLINE_BYTES",
    "STALE_LEASE",
    "TARGET_AMBIGUOUS",
    "TARGET_REQUIRED",
    "TERMINAL_STATES",
    "UNKNOWN_COMMAND",
    "BlobRef",
    "CommandEnvelope",
    "CommandError",
    "CommandId",
    "CommandName",
    "CommandRecord",
    "CommandRefused",
    "CommandResponse",
    "CommandState",
    "DeploymentId",
    "IllegalTransition",
    "LeaseId",
    "acknowledge",
    "cancel",
    "dispatch",
    "envelope_for",
    "fits_inline",
    "json_size",
    "lease",
    "new_command",
    "next_wakeup",
    "renew",
    "respond",
    "tick",
    "validate_command_name",
]


class CommandState(StrEnum):
    """Where a command is. Values are stable wire strings."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


C = CommandState

TERMINAL_STATES = frozenset({C.SUCCEEDED, C.FAILED, C.EXPIRED, C.CANCELLED})
_HELD_STATES = frozenset({C.DISPATCHED, C.LEASED})


class CommandRecord(WireModel):
    """The lifecycle part of a command, as the manager stores it.

    ``attempt`` is the number of the current (or next) delivery, from 1. ``lease_id`` and
    ``lease_expires_at`` describe the live lease while dispatched or leased; after a response the
    answering ``lease_id`` is kept so a retried response is recognised as a duplicate.
    ``response`` holds the handler's answer (succeeded, or failed by the handler); ``error`` the
    reason for an ending without one (``MAX_ATTEMPTS``, ``COMMAND_EXPIRED``, ``COMMAND_CANCELLED``).
    """

    id: CommandId
    deployment_id: DeploymentId
    command: CommandName
    state: CommandState = C.PENDING
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPTS_LIMIT)
    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS_LIMIT)
    created_at: Timestamp
    deadline: Timestamp
    lease_id: LeaseId | None = None
    lease_expires_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    response: CommandResponse | None = None
    error: CommandError | None = None

    @model_validator(mode="after")
    def _check_invariants(self) -> CommandRecord:
        problem = _invariant_violation(self)
        if problem:
            raise ValueError(f"inconsistent {self.state.value} command: {problem}")
        return self

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def outcome_error(self) -> CommandError | None:
        """Why the command did not succeed (from the handler or the lifecycle), if it did not."""
        return self.response.error if self.response is not None else self.error


def _invariant_violation(r: CommandRecord) -> str | None:
    held = r.state in _HELD_STATES
    resp = r.response
    rules: list[tuple[bool, str]] = [
        (r.deadline > r.created_at, "deadline must be after created_at"),
        (r.attempt <= r.max_attempts, "attempt cannot exceed max_attempts"),
        ((r.lease_expires_at is not None) == held, "lease expiry is set exactly while held"),
        ((r.lease_id is not None) == (held or resp is not None), "lease_id while held/answered"),
        (r.lease_expires_at is None or r.lease_expires_at <= r.deadline, "lease past deadline"),
        ((r.ended_at is not None) == r.terminal, "ended_at is set exactly when terminal"),
        (r.ended_at is None or r.ended_at >= r.created_at, "ended before it was created"),
        (resp is None or r.state in {C.SUCCEEDED, C.FAILED}, "response on an unanswered state"),
        (r.state is not C.SUCCEEDED or (resp is not None and resp.ok), "success needs ok"),
        ((r.error is not None) == (r.terminal and resp is None), "error iff ended unanswered"),
        (resp is None or resp.lease_id == r.lease_id, "response for another lease"),
        (resp is None or resp.command_id == r.id, "response for another command"),
    ]
    return next((message for ok, message in rules if not ok), None)


def _seconds(ttl: float) -> timedelta:
    if not ttl > 0:
        raise ValidationError("a lease duration must be a positive number of seconds", field="ttl")
    return timedelta(seconds=ttl)


def _check_aware(value: object, field: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(f"{field} must be a timezone-aware datetime", field=field)


def _evolve(record: CommandRecord, **changes: Any) -> CommandRecord:
    return CommandRecord(**{**dict(record), **changes})


def new_command(
    *,
    command_id: str,
    deployment_id: str,
    command: str,
    now: datetime,
    deadline: datetime,
    max_attempts: int = 3,
) -> CommandRecord:
    """A fresh pending command. Raises ``ValidationError`` for a bad name, id or deadline."""
    validate_command_name(command)
    _check_aware(now, "now")
    _check_aware(deadline, "deadline")
    if deadline <= now:
        raise ValidationError("the deadline must be in the future", field="deadline")
    return parse(
        CommandRecord,
        {
            "id": command_id,
            "deployment_id": deployment_id,
            "command": command,
            "created_at": now,
            "deadline": deadline,
            "max_attempts": max_attempts,
        },
    )


def tick(record: CommandRecord, now: datetime) -> CommandRecord:
    """Apply what time alone does: a passed deadline expires, a passed lease is lost.

    A lost lease returns the command to ``pending`` for another attempt, or fails it with
    ``MAX_ATTEMPTS`` when that was the last one. Returns ``record`` itself if nothing is due.
    """
    _check_aware(now, "now")
    if record.terminal:
        return record
    if now >= record.deadline:
        return _end(
            record,
            now,
            C.EXPIRED,
            CommandError(code=COMMAND_EXPIRED, message="the command's deadline passed"),
        )
    if record.lease_expires_at is not None and now >= record.lease_expires_at:
        if record.attempt >= record.max_attempts:
            message = f"no response after {record.max_attempts} attempt(s)"
            return _end(record, now, C.FAILED, CommandError(code=MAX_ATTEMPTS, message=message))
        return _evolve(
            record,
            state=C.PENDING,
            attempt=record.attempt + 1,
            lease_id=None,
            lease_expires_at=None,
        )
    return record


def next_wakeup(record: CommandRecord) -> datetime | None:
    """The earliest time :func:`tick` would change ``record`` (``None`` once terminal).

    Lets the manager schedule one timer per command instead of polling.
    """
    if record.terminal:
        return None
    return record.lease_expires_at or record.deadline


def _end(
    record: CommandRecord,
    now: datetime,
    state: CommandState,
    error: CommandError | None = None,
    response: CommandResponse | None = None,
) -> CommandRecord:
    return _evolve(
        record,
        state=state,
        ended_at=max(now, record.created_at),
        lease_id=response.lease_id if response is not None else None,
        lease_expires_at=None,
        error=error,
        response=response,
    )


_TERMINAL_CODES = {
    C.EXPIRED: COMMAND_EXPIRED,
    C.CANCELLED: COMMAND_CANCELLED,
    C.SUCCEEDED: COMMAND_FINISHED,
    C.FAILED: COMMAND_FINISHED,
}


def _refuse_if_terminal(record: CommandRecord, operation: str) -> None:
    if record.terminal:
        raise CommandRefused(
            f"cannot {operation} command {record.id}: it is {record.state.value}",
            code=_TERMINAL_CODES[record.state],
            field="state",
            details={"state": record.state.value},
        )


def _lease_until(record: CommandRecord, now: datetime, ttl: float) -> datetime:
    return min(now + _seconds(ttl), record.deadline)


def _stale(record: CommandRecord, lease_id: str, operation: str) -> CommandRefused:
    return CommandRefused(
        f"cannot {operation} command {record.id}: lease {lease_id} is not its current lease",
        code=STALE_LEASE,
        field="lease_id",
        details={"state": record.state.value},
    )


def dispatch(record: CommandRecord, *, lease_id: str, now: datetime, ttl: float) -> CommandRecord:
    """Offer a pending command to a receiver under ``lease_id`` for ``ttl`` seconds."""
    record = tick(record, now)
    _refuse_if_terminal(record, "dispatch")
    if record.state is not C.PENDING:
        raise IllegalTransition(
            f"cannot dispatch command {record.id}: it is {record.state.value}", field="state"
        )
    until = _lease_until(record, now, ttl)
    return _evolve(record, state=C.DISPATCHED, lease_id=lease_id, lease_expires_at=until)


def lease(record: CommandRecord, *, lease_id: str, now: datetime, ttl: float) -> CommandRecord:
    """Hand a pending command out under ``lease_id``, a fresh lease the caller made (pull
    model: the manager answering an agent's lease request)."""
    record = tick(record, now)
    _refuse_if_terminal(record, "lease")
    if record.state is not C.PENDING:
        raise IllegalTransition(
            f"cannot lease command {record.id}: it is {record.state.value}", field="state"
        )
    until = _lease_until(record, now, ttl)
    return _evolve(record, state=C.LEASED, lease_id=lease_id, lease_expires_at=until)


def acknowledge(
    record: CommandRecord, *, lease_id: str, now: datetime, ttl: float
) -> CommandRecord:
    """The receiver takes the command it was offered (push over the open connection): a
    dispatched command, under the offer's ``lease_id``. Anything else is a stale lease — a
    pending command included: only :func:`lease` hands one out."""
    record = tick(record, now)
    _refuse_if_terminal(record, "acknowledge")
    if record.state is C.LEASED and lease_id == record.lease_id:
        raise IllegalTransition(f"command {record.id} is already leased", field="state")
    if record.state is not C.DISPATCHED or lease_id != record.lease_id:
        raise _stale(record, lease_id, "acknowledge")
    until = _lease_until(record, now, ttl)
    return _evolve(record, state=C.LEASED, lease_id=lease_id, lease_expires_at=until)


def renew(record: CommandRecord, *, lease_id: str, now: datetime, ttl: float) -> CommandRecord:
    """Extend the current lease to ``now + ttl`` (never past the deadline).

    This is what lets a long handler keep its command without fitting into one lease.
    """
    record = tick(record, now)
    _refuse_if_terminal(record, "renew the lease of")
    if record.state is not C.LEASED or lease_id != record.lease_id:
        raise _stale(record, lease_id, "renew the lease of")
    return _evolve(record, lease_expires_at=_lease_until(record, now, ttl))


def respond(record: CommandRecord, response: CommandResponse, *, now: datetime) -> CommandRecord:
    """Store the handler's response, ending the command (succeeded, or failed with its error).

    Refused (:class:`CommandRefused`) with ``DUPLICATE_RESPONSE`` if this lease already answered,
    the terminal state's code if the command ended otherwise, ``STALE_LEASE`` if the lease is not
    the current one (it was lost, or the command was handed to someone else).
    """
    if response.command_id != record.id:
        raise ValidationError(
            f"response is for {response.command_id}, not {record.id}", field="command_id"
        )
    record = tick(record, now)
    if record.response is not None and record.lease_id == response.lease_id:
        raise CommandRefused(
            f"command {record.id} already has a response from lease {response.lease_id}",
            code=DUPLICATE_RESPONSE,
            field="lease_id",
            details={"state": record.state.value},
        )
    _refuse_if_terminal(record, "respond to")
    if record.state not in _HELD_STATES or response.lease_id != record.lease_id:
        raise _stale(record, response.lease_id, "respond to")
    state = C.SUCCEEDED if response.ok else C.FAILED
    return _end(record, now, state, response=response)


def cancel(record: CommandRecord, *, now: datetime, reason: str | None = None) -> CommandRecord:
    """Cancel a command that has not ended; its handler learns it when it responds or renews."""
    record = tick(record, now)
    _refuse_if_terminal(record, "cancel")
    message = reason or "the command was cancelled"
    return _end(record, now, C.CANCELLED, CommandError(code=COMMAND_CANCELLED, message=message))


def envelope_for(
    record: CommandRecord,
    *,
    response_url: str,
    params: dict[str, Any] | None = None,
    params_ref: BlobRef | None = None,
    traceparent: str | None = None,
) -> CommandEnvelope:
    """The envelope delivering ``record``'s current lease to its handler."""
    if record.state not in _HELD_STATES:
        raise IllegalTransition(
            f"command {record.id} is {record.state.value}; only a dispatched or leased command "
            "can be delivered",
            field="state",
        )
    return parse(
        CommandEnvelope,
        {
            "id": record.id,
            "deployment_id": record.deployment_id,
            "command": record.command,
            "params": params,
            "params_ref": params_ref,
            "lease_id": record.lease_id,
            "lease_expires_at": record.lease_expires_at,
            "attempt": record.attempt,
            "max_attempts": record.max_attempts,
            "deadline": record.deadline,
            "response_url": response_url,
            "traceparent": traceparent,
        },
    )
