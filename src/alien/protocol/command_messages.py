"""Remote-command messages on the wire: the envelope handed to a handler and its response.

Manager → agent (or direct invoke): a :class:`CommandEnvelope`. Handler → manager: a
:class:`CommandResponse` posted to ``response_url``. Both are JSON (pydantic), validated strictly
because each side treats the other's input as untrusted.

Large payloads do not travel inline: params or results above :data:`MAX_INLINE_BYTES` (compact
JSON) go through storage and the message carries a :class:`BlobRef` ``{url, size, sha256}``
instead, so a multi-megabyte result never sits in a database row or a WebSocket frame, and the
receiver can verify what it downloaded.

Command names come from untrusted input (CLI arguments, API bodies) and end up in logs, URLs and
handler lookups, so they are restricted to :data:`COMMAND_NAME_PATTERN`:
``^[a-z0-9][a-z0-9._-]{0,127}$`` — lowercase ASCII letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or digit, 1 to 128 characters. Lowercase only, so two names that differ
only in case cannot both exist and confuse an operator.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, JsonValue, StringConstraints, model_validator

from alien.errors import ValidationError
from alien.protocol.wire import ErrorMessage, Timestamp, WireModel, prefixed_id

# --- stable error codes (part of the public contract: never rename one) ------------------------

COMMAND_NOT_FOUND = "COMMAND_NOT_FOUND"
"""No command with that id (or none visible to the caller)."""
COMMAND_EXPIRED = "COMMAND_EXPIRED"
"""The deadline passed before the command finished."""
COMMAND_CANCELLED = "COMMAND_CANCELLED"
"""Someone cancelled the command before it finished."""
COMMAND_FINISHED = "COMMAND_FINISHED"
"""The command already succeeded or failed; nothing can change it any more."""
TARGET_AMBIGUOUS = "TARGET_AMBIGUOUS"
"""The named target function is not one with commands enabled (or a bare deployment name names
several deployments); pick one of those listed."""
TARGET_REQUIRED = "TARGET_REQUIRED"
"""Several functions have commands enabled and none was named as the target."""
NO_COMMAND_TARGET = "NO_COMMAND_TARGET"
"""No function can run commands there (none has commands enabled, or nothing runs yet)."""
UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
"""The deployment has no handler registered under that command name."""
HANDLER_ERROR = "HANDLER_ERROR"
"""The handler raised; the message says what it raised."""
HANDLER_TIMEOUT = "HANDLER_TIMEOUT"
"""The handler did not return before the command's deadline."""
INVALID_PARAMS = "INVALID_PARAMS"
"""The params do not suit the handler (or could not be fetched / verified from ``params_ref``)."""
STALE_LEASE = "STALE_LEASE"
"""The lease named is not the command's current lease (it expired or another one replaced it)."""
MAX_ATTEMPTS = "MAX_ATTEMPTS"
"""Every allowed delivery attempt lost its lease; the command failed without a response."""
DUPLICATE_RESPONSE = "DUPLICATE_RESPONSE"
"""A response for this lease was already stored; the retry is ignored (the first one counts)."""

ERROR_CODES = frozenset(
    {
        COMMAND_NOT_FOUND,
        COMMAND_EXPIRED,
        COMMAND_CANCELLED,
        COMMAND_FINISHED,
        TARGET_AMBIGUOUS,
        TARGET_REQUIRED,
        UNKNOWN_COMMAND,
        HANDLER_ERROR,
        HANDLER_TIMEOUT,
        INVALID_PARAMS,
        STALE_LEASE,
        MAX_ATTEMPTS,
        DUPLICATE_RESPONSE,
    }
)

# --- limits and names -------------------------------------------------------------------------

MAX_INLINE_BYTES = 256 * 1024
"""Largest params/result carried inline (compact JSON, UTF-8); anything larger goes by BlobRef."""
MAX_ERROR_DETAILS_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048
MAX_ATTEMPTS_LIMIT = 100

COMMAND_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_COMMAND_NAME_RE = re.compile(COMMAND_NAME_PATTERN)

CommandName = Annotated[str, StringConstraints(pattern=COMMAND_NAME_PATTERN, strict=True)]
CommandId = prefixed_id("cmd")
DeploymentId = prefixed_id("dep")
LeaseId = prefixed_id("lse")


def validate_command_name(name: object) -> str:
    """Return ``name`` if it is a valid command name; else ``ValidationError(field="command")``."""
    if not isinstance(name, str) or _COMMAND_NAME_RE.fullmatch(name) is None:
        raise ValidationError(
            "invalid command name: use 1 to 128 of a-z 0-9 . _ - starting with a letter or digit",
            field="command",
        )
    return name


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: the measure the inline limits use. Raises
    ``ValueError`` for NaN and infinities, which JSON has no spelling for (Python's ``json``
    writes ``NaN``, which other languages' parsers refuse)."""
    return len(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    )


def fits_inline(value: Any) -> bool:
    """Whether ``value`` may travel inline (else store it and send a :class:`BlobRef`)."""
    return json_size(value) <= MAX_INLINE_BYTES


def _bounded(limit: int, what: str) -> Any:
    def check(value: Any) -> Any:
        if value is not None and json_size(value) > limit:
            raise ValueError(f"{what} exceed {limit} bytes as JSON; send them by reference")
        return value

    return AfterValidator(check)


_WHITESPACE = re.compile(r"\s")
"""Any character ``str.isspace`` calls whitespace (``re`` uses the same Unicode table): one scan
in C instead of a Python loop over every character of every URL of every delivery."""


def _check_http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or _WHITESPACE.search(value):
        raise ValueError("must be an http(s) URL without whitespace")
    return value


HttpUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=MAX_URL_LENGTH, strict=True),
    AfterValidator(_check_http_url),
]


def _check_traceparent(value: str) -> str:
    _version, trace_id, parent_id, _flags = value.split("-")
    if set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        raise ValueError("trace-id and parent-id must not be all zeros")
    return value


Traceparent = Annotated[
    str,
    StringConstraints(pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", strict=True),
    AfterValidator(_check_traceparent),
]
"""A W3C trace-context ``traceparent`` header value, version 00."""


# --- messages ---------------------------------------------------------------------------------


class BlobRef(WireModel):
    """Where a large payload lives, and how to verify it (size and SHA-256 of the bytes)."""

    url: HttpUrl
    size: int = Field(ge=0, le=2**53)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)]


class CommandError(WireModel):
    """Why a command failed: a stable ``code`` (ours or the handler's), a message, details."""

    code: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$", strict=True)]
    message: ErrorMessage
    details: Annotated[dict[str, JsonValue], _bounded(MAX_ERROR_DETAILS_BYTES, "error details")] = (
        Field(default_factory=dict)
    )


class CommandEnvelope(WireModel):
    """One delivery of a command to its handler.

    The receiver answers with a :class:`CommandResponse` carrying the same ``lease_id``; the lease
    is valid until ``lease_expires_at`` (renewable), the command until ``deadline``. ``attempt``
    counts deliveries from 1; the command fails with ``MAX_ATTEMPTS`` after ``max_attempts``
    deliveries lost their lease. ``traceparent`` continues the caller's trace in the handler.
    """

    id: CommandId
    deployment_id: DeploymentId
    command: CommandName
    params: Annotated[dict[str, JsonValue] | None, _bounded(MAX_INLINE_BYTES, "inline params")] = (
        None
    )
    params_ref: BlobRef | None = None
    lease_id: LeaseId
    lease_expires_at: Timestamp
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS_LIMIT)
    max_attempts: int = Field(ge=1, le=MAX_ATTEMPTS_LIMIT)
    deadline: Timestamp
    response_url: HttpUrl
    traceparent: Traceparent | None = None

    @model_validator(mode="after")
    def _check(self) -> CommandEnvelope:
        if (self.params is None) == (self.params_ref is None):
            raise ValueError("exactly one of params and params_ref must be given")
        if self.attempt > self.max_attempts:
            raise ValueError("attempt cannot exceed max_attempts")
        if self.lease_expires_at > self.deadline:
            raise ValueError("a lease cannot outlive the command's deadline")
        return self


class CommandResponse(WireModel):
    """A handler's answer for one lease: a result (inline or by reference) or an error."""

    command_id: CommandId
    lease_id: LeaseId
    ok: bool
    result: Annotated[JsonValue, _bounded(MAX_INLINE_BYTES, "inline results")] = None
    result_ref: BlobRef | None = None
    error: CommandError | None = None

    @model_validator(mode="after")
    def _check(self) -> CommandResponse:
        if self.ok:
            if self.error is not None:
                raise ValueError("a successful response carries no error")
            if self.result is not None and self.result_ref is not None:
                raise ValueError("give the result inline or by result_ref, not both")
        elif self.error is None or self.result is not None or self.result_ref is not None:
            raise ValueError("a failed response carries an error and no result")
        return self

    @classmethod
    def success(
        cls,
        command_id: str,
        lease_id: str,
        result: Any = None,
        *,
        result_ref: BlobRef | None = None,
    ) -> CommandResponse:
        return cls(
            command_id=command_id, lease_id=lease_id, ok=True, result=result, result_ref=result_ref
        )

    @classmethod
    def failure(
        cls,
        command_id: str,
        lease_id: str,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> CommandResponse:
        error = CommandError(code=code, message=message, details=details or {})
        return cls(command_id=command_id, lease_id=lease_id, ok=False, error=error)
