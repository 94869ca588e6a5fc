"""Failed command responses that can always be built, whatever the handler raised.

A failure travels to the vendor's control plane, so what it may carry is decided here:

* the exception's type and ``str()`` message, but **no traceback** unless the deployment opted in
  (``include_traceback``): a traceback shows file paths, code and local context from the customer's
  environment;
* a handler that raises an :class:`~alien.errors.AlienError` (or a subclass of its own with a stable
  ``code``) fails with that code and its ``field``/``details``, so a handler can report
  "NOT_FOUND" rather than a generic ``HANDLER_ERROR``;
* message and details pass the process redactor (:mod:`alien.redaction`): a handler that quotes
  a vault value or a secret environment variable in its exception (both registered as they are
  read) does not ship that secret to the vendor;
* everything is bounded to the wire limits (message 4096 characters, details 16 KiB of JSON). If
  some part still does not validate (an odd code, non-JSON details), it is dropped rather than
  letting the response itself fail: :func:`failure` never raises for a valid command/lease id.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from alien.errors import AlienError
from alien.protocol.command_messages import (
    HANDLER_ERROR,
    MAX_ERROR_DETAILS_BYTES,
    CommandResponse,
    json_size,
)
from alien.redaction import redact
from alien.sdk.command_context import CommandContext

MAX_MESSAGE_CHARS = 4096
_TRACEBACK_BYTES = 6 * 1024
"""Room for the traceback in the details (JSON escaping of newlines and quotes can double it)."""
_HANDLER_DETAILS_BYTES = 4 * 1024
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def failure(
    context: CommandContext, code: str, message: str, details: dict[str, Any] | None = None
) -> CommandResponse:
    """A failed response for ``context``'s lease, degrading (never raising) on odd inputs."""
    message = _bounded_message(redact(message))
    details = redact(details) if details else details
    if details and not _details_fit(details, MAX_ERROR_DETAILS_BYTES):
        details = None
    try:
        return CommandResponse.failure(
            context.command_id, context.lease_id, code, message, details or None
        )
    except Exception:  # a code or details the wire refuses: keep what certainly validates
        return CommandResponse.failure(context.command_id, context.lease_id, HANDLER_ERROR, message)


def exception_failure(
    context: CommandContext, exc: BaseException, *, include_traceback: bool
) -> CommandResponse:
    """The response for a handler that raised ``exc``."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    text = _safe_str(exc)
    details: dict[str, Any] = {"type": kind}
    code = HANDLER_ERROR
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, AlienError) and _CODE_RE.fullmatch(str(exc.code)):
        code = exc.code
        message = text or code
        if exc.field is not None:
            details["field"] = exc.field
        if exc.details and _details_fit(exc.details, _HANDLER_DETAILS_BYTES):
            details["details"] = exc.details
    if include_traceback:
        details["traceback"] = _bounded_traceback(exc)
    return failure(context, code, message, details)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not turn one failure into another
        return f"<unprintable {type(exc).__name__}>"


def _bounded_message(message: str) -> str:
    message = message or "the command failed"
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


def _bounded_traceback(exc: BaseException) -> str:
    """The formatted traceback, keeping its end (where it was raised) if it is too long."""
    data = "".join(traceback.format_exception(exc)).encode(errors="replace")
    if len(data) <= _TRACEBACK_BYTES:
        return data.decode()
    return "…" + data[-_TRACEBACK_BYTES:].decode(errors="ignore")


def _details_fit(details: dict[str, Any], limit: int) -> bool:
    try:
        return json_size(details) <= limit
    except (TypeError, ValueError, RecursionError):
        return False
