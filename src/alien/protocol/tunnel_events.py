"""Events a tunnel :class:`~alien.protocol.tunnel.Connection` reports to its application.

``Connection.receive_data`` returns these, in the order the peer's frames arrived. They are plain
frozen dataclasses: the application matches on the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alien.protocol.frames import Settings


@dataclass(frozen=True, slots=True)
class SettingsReceived:
    """The peer's HELLO arrived; its limits apply from now on (windows may have grown)."""

    settings: Settings


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream; ``meta`` is its JSON object (method, target, headers, …)."""

    stream_id: int
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes for a stream. Call ``acknowledge(stream_id, len(data))`` once they are consumed:
    until then they count against the window, which is what bounds the receiver's memory."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed the stream: it will send no more data on it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream was aborted (by the peer, or refused because the peer is going away).

    Nothing more is sent or received on it; unconsumed data needs no acknowledgement.
    """

    stream_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """Send credit grew: on ``stream_id``, or on the whole connection when ``stream_id`` is 0
    (every blocked stream may now be able to send more)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The peer pinged; the PONG is already queued."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """Answer to one of our pings (the payload says which)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The peer sent GOAWAY: no new streams; streams up to ``last_stream_id`` may finish."""

    code: int
    reason: str
    last_stream_id: int


Event = (
    SettingsReceived
    | StreamOpened
    | DataReceived
    | StreamEnded
    | StreamReset
    | WindowUpdated
    | PingReceived
    | PongReceived
    | ConnectionTerminated
)
