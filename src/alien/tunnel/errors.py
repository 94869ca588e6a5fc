"""Errors of the asyncio tunnel layer.

They extend :class:`~alien.protocol.errors.TunnelError` (the protocol layer's base) so callers can
catch every tunnel failure at once, and they carry the 502 status: when the tunnel fails under a
proxied request, the engineer's tool should see "bad gateway", not a bug in their request.
Codes are part of the public contract: never rename one.
"""

from __future__ import annotations

from alien.errors import AlienError
from alien.protocol.errors import TunnelError
from alien.protocol.frames import ErrorCode


class TunnelClosed(TunnelError):
    """The tunnel connection is gone (transport lost, keepalive timeout, closed or aborted).

    Every stream that was still open fails with this, and so does opening a new one.
    """

    code = "TUNNEL_CLOSED"
    status = 502


class TunnelStreamReset(TunnelError):
    """A stream was aborted; ``error_code`` is the wire code (see :class:`ErrorCode`).

    ``by_peer`` tells a reset the other side sent from one this side made (after which the
    stream's own methods keep raising this, so a task still using it learns why it stopped).
    """

    code = "TUNNEL_STREAM_RESET"
    status = 502

    def __init__(self, stream_id: int, error_code: int, reason: str, *, by_peer: bool) -> None:
        name = _code_name(error_code)
        who = "the peer" if by_peer else "this side"
        text = f"stream {stream_id} was reset by {who} ({name})"
        super().__init__(f"{text}: {reason}" if reason else text)
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = reason
        self.by_peer = by_peer


class TunnelMessageError(TunnelError):
    """Bytes on a stream that do not follow the convention its kind uses (e.g. a malformed
    HTTP response head); ``field`` names the part that is wrong."""

    code = "TUNNEL_BAD_MESSAGE"
    status = 502


class UpstreamUnreachable(AlienError):
    """A forwarding upstream could not get an answer from the destination it forwards to."""

    code = "UPSTREAM_UNREACHABLE"
    status = 502


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code 0x{code:x}"
