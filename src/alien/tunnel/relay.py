"""Splice two tunnel streams together (the manager between the CLI and a pull-model agent).

Bytes are relayed as they arrive, never collected: a chunk read from one stream is sent on the
other before the next is read. Reading returns credit to the first stream's sender and sending
waits for the second stream's credit, so a slow reader at one end stops the writer at the other
end after about one window per hop, and the relay holds at most one window plus one chunk per
direction. A reset (or a lost connection) on either side resets the other with the same code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from alien.protocol.errors import TunnelError
from alien.protocol.frames import ErrorCode
from alien.tunnel.errors import TunnelStreamReset
from alien.tunnel.stream import TunnelStream


@dataclass(frozen=True)
class RelayResult:
    """What moved (for the audit trail) and the first failure, if the relay ended early."""

    a_to_b: int
    b_to_a: int
    error: TunnelError | None


async def relay(a: TunnelStream, b: TunnelStream) -> RelayResult:
    """Relay ``a``'s bytes to ``b`` and ``b``'s to ``a`` until both directions have ended."""
    failures: list[TunnelError] = []  # the first is the cause; the rest are its echoes
    try:
        forward, backward = await asyncio.gather(_pump(a, b, failures), _pump(b, a, failures))
    finally:  # cancelled: neither end may be left waiting
        for stream in (a, b):
            await stream.reset(ErrorCode.CANCEL, "the relay stopped")
    return RelayResult(forward, backward, failures[0] if failures else None)


async def _pump(source: TunnelStream, sink: TunnelStream, failures: list[TunnelError]) -> int:
    moved = 0
    while True:
        try:
            chunk = await source.read()
        except TunnelError as exc:
            failures.append(exc)
            await sink.reset(*_reset_args(exc))
            return moved
        try:
            if not chunk:
                await sink.end()
                return moved
            await sink.send(chunk)
        except TunnelError as exc:
            failures.append(exc)
            await source.reset(*_reset_args(exc))
            return moved
        moved += len(chunk)


def _reset_args(error: TunnelError) -> tuple[int, str]:
    if isinstance(error, TunnelStreamReset):
        return error.error_code, error.reason
    return ErrorCode.CANCEL, f"the other side of the relay failed: {error.message}"
