"""One exception hierarchy for all of alien.

Every error a user can see carries a stable machine-readable ``code``, a one-line human ``message``
and, where one input is to blame, the ``field`` that names it. The manager turns these into JSON
bodies ``{"error": {"code", "message", "field"}}`` with the class's HTTP status; the CLI prints the
message on one line and exits non-zero. Codes are part of the public contract: never rename one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AlienError(Exception):
    """Base of every error alien raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance-level override of the class default

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __str__(self) -> str:
        return self.message


class ValidationError(AlienError):
    """Input that can never succeed as given (bad name, bad key, bad body)."""

    code = "VALIDATION_ERROR"
    status = 422


class InvalidKey(ValidationError):
    """A storage/kv key or resource path that is unsafe or malformed."""

    code = "INVALID_KEY"


class StackError(ValidationError):
    """A stack definition that does not validate; ``field`` names the resource."""

    code = "INVALID_STACK"


class BindingError(AlienError):
    """App code asked for a resource the platform did not bind (or bound as another kind)."""

    code = "BINDING_ERROR"
    status = 500


class NotFound(AlienError):
    code = "NOT_FOUND"
    status = 404


class Conflict(AlienError):
    code = "CONFLICT"
    status = 409


class Gone(AlienError):
    """Something that existed and has ended for good (asking again will not help)."""

    code = "GONE"
    status = 410


class TooManyRequests(AlienError):
    """Another request of the same kind is still being answered; retry shortly."""

    code = "TOO_MANY_REQUESTS"
    status = 429


class PayloadTooLarge(AlienError):
    """An upload over the configured size limit; ``field`` names the part that was too big."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class Unauthenticated(AlienError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(AlienError):
    code = "FORBIDDEN"
    status = 403


class PlatformError(AlienError):
    """Provisioning or running something on a platform failed."""

    code = "PLATFORM_ERROR"
    status = 500
