"""Errors of the manager's HTTP API, turned back into alien's exception hierarchy.

The manager answers every failure as ``{"error": {"code", "message", "field", "details"}}`` with the
status of the ``AlienError`` subclass that caused it (see ``alien.manager.api.errors``). Rebuilding
the matching subclass here lets callers catch ``NotFound`` or ``Conflict`` exactly as they would
in-process, and the CLI print the manager's own one-line message with its ``field``.

Failing to reach the manager at all is a different kind of failure (the request may never have
arrived), so it has its own class, :class:`ManagerUnreachable`, which the agent treats as
"retry later" and the CLI as "check --manager".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from alien.errors import (
    AlienError,
    Conflict,
    Forbidden,
    InvalidKey,
    NotFound,
    PayloadTooLarge,
    StackError,
    Unauthenticated,
    ValidationError,
)
from alien.protocol.errors import IllegalTransition

if TYPE_CHECKING:
    import httpx


class ManagerUnreachable(AlienError):
    """No answer from the manager: connection refused, DNS, TLS, timeout, dropped connection."""

    code = "MANAGER_UNREACHABLE"
    status = 503


class BadResponse(AlienError):
    """The manager answered 2xx with a body this client does not understand (version skew?)."""

    code = "BAD_RESPONSE"
    status = 502


# Codes whose class is more specific than the status alone says.
_BY_CODE: dict[str, type[AlienError]] = {
    "INVALID_STACK": StackError,
    "INVALID_KEY": InvalidKey,
    "ILLEGAL_TRANSITION": IllegalTransition,
}
_BY_STATUS: dict[int, type[AlienError]] = {
    400: ValidationError,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
}


def error_from_body(status: int, body: bytes | bytearray | str) -> AlienError:
    """The exception an error response stands for; keeps the manager's code, message, field."""
    data = _error_object(body)
    if data is None:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8", "replace")
        snippet = " ".join(text.split())[:200]
        message = f"the manager answered HTTP {status}" + (f": {snippet}" if snippet else "")
        # Not the manager's error body (a proxy, a load balancer): ``HTTP_<status>`` says so.
        return _BY_STATUS.get(status, AlienError)(message, code=f"HTTP_{status}")
    code = data.get("code") if isinstance(data.get("code"), str) else f"HTTP_{status}"
    message = data.get("message") if isinstance(data.get("message"), str) else f"HTTP {status}"
    field = data.get("field") if isinstance(data.get("field"), str) else None
    details = data.get("details") if isinstance(data.get("details"), dict) else None
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, AlienError)
    return cls(message, field=field, code=code, details=details)


def error_from_response(response: httpx.Response) -> AlienError:
    """``error_from_body`` for an ``httpx`` response whose body has been read."""
    return error_from_body(response.status_code, response.content)


def unreachable(base_url: str, exc: Exception) -> ManagerUnreachable:
    """Describe a transport failure without echoing anything but the URL and the reason."""
    reason = str(exc) or type(exc).__name__
    return ManagerUnreachable(
        f"cannot reach the manager at {base_url}: {reason}",
        field="manager",
        details={"reason": type(exc).__name__},
    )


def _error_object(body: bytes | bytearray | str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), dict):
        return None
    return parsed["error"]
