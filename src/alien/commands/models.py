"""What the commands API answers, as the client sees it, and how a command's failure is raised.

Defined here rather than imported from ``alien.manager`` so a client never pulls in the server.
Unknown fields are ignored: an older client keeps working against a newer manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from alien.errors import AlienError

TERMINAL_STATES = frozenset({"succeeded", "failed", "expired", "cancelled"})


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResultRef(_Out):
    url: str
    size: int
    sha256: str


class ParamsRef(_Out):
    sha256: str
    size: int


class CommandErrorInfo(_Out):
    code: str
    message: str
    details: dict[str, Any] = {}


class Command(_Out):
    """One command: ``state`` is ``pending dispatched leased succeeded failed expired
    cancelled``; once it ended, ``result``/``result_ref`` (succeeded) or ``error`` says how."""

    id: str
    deployment_id: str
    command: str
    target: str
    state: str
    attempt: int
    max_attempts: int
    created_at: datetime
    deadline: datetime
    lease_expires_at: datetime | None = None
    ended_at: datetime | None = None
    created_by: str | None = None
    idempotency_key: str | None = None
    params: dict[str, Any] | None = None
    params_ref: ParamsRef | None = None
    result: Any = None
    result_ref: ResultRef | None = None
    error: CommandErrorInfo | None = None

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


class CommandFailed(AlienError):
    """A command ended without succeeding; ``code`` is its error code (``HANDLER_ERROR``,
    ``HANDLER_TIMEOUT``, ``COMMAND_EXPIRED``, ``COMMAND_CANCELLED``, ``MAX_ATTEMPTS``,
    ``UNKNOWN_COMMAND``, or the handler's own), ``command`` the command as the manager reported
    it."""

    code = "COMMAND_FAILED"
    status = 409

    def __init__(self, command: Command) -> None:
        error = command.error
        code = error.code if error is not None else "COMMAND_FAILED"
        message = error.message if error is not None else f"the command {command.state}"
        super().__init__(
            message,
            code=code,
            details={
                **(error.details if error else {}),
                "command_id": command.id,
                "state": command.state,
            },
        )
        self.command = command


@dataclass(frozen=True)
class FanOutResult:
    """One deployment's outcome in a fan-out: ``ok`` with ``result``, or ``error`` (a
    :class:`CommandFailed` or the API's refusal); ``skipped`` when it was never started because
    ``max_errors`` was exceeded first."""

    deployment: str
    ok: bool
    result: Any = None
    error: AlienError | None = None
    command_id: str | None = None
    skipped: bool = False
