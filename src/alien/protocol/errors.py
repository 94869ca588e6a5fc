"""Errors raised by the pure protocol layer.

They live here rather than in :mod:`alien.errors` because only protocol code raises them; they
still derive from the one hierarchy so the manager maps them to HTTP statuses and JSON bodies
without special cases. Codes are part of the public contract: never rename one.
"""

from __future__ import annotations

from typing import Any

from alien.errors import AlienError, Conflict


class IllegalTransition(Conflict):
    """An event or operation that the current state does not allow.

    A conflict (409), not a validation error: the same request can be right a moment later, once
    the state has moved on (e.g. ``deploy_started`` while another deploy is still running).
    """

    code = "ILLEGAL_TRANSITION"


class CommandRefused(Conflict):
    """A command operation refused for a reason the caller must act on.

    The instance ``code`` is one of the command error codes (``STALE_LEASE``, ``COMMAND_EXPIRED``,
    ``COMMAND_CANCELLED``, ``DUPLICATE_RESPONSE``, …) so an agent can tell "someone else holds this
    command now" from "your result was already stored" without parsing the message.
    """

    code = "COMMAND_REFUSED"


class TunnelError(AlienError):
    """Base of tunnel errors; never raised itself."""

    code = "TUNNEL_ERROR"
    status = 400


class TunnelProtocolError(TunnelError):
    """The peer broke the tunnel protocol; the connection is dead.

    ``error_code`` is the wire error code (see :class:`alien.protocol.frames.ErrorCode`) that was
    sent to the peer in the GOAWAY frame queued before this was raised.
    """

    code = "TUNNEL_PROTOCOL_ERROR"

    def __init__(
        self, message: str, *, error_code: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.error_code = error_code


class StreamStateError(TunnelError):
    """The local application used a stream in a way its state forbids.

    Typical cause is a race the application must handle: sending on a stream the peer has just
    reset. Nothing is sent and the connection stays usable.
    """

    code = "TUNNEL_STREAM_STATE"
    status = 409
