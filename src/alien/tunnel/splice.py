"""Two tunnel transports spliced into one tunnel: the manager between a debug session's CLI and
the deployment's agent (pull model).

Why not a :class:`~alien.tunnel.connection.TunnelConnection` on each side and a relay per
stream (what the manager still does for agents that predate splicing): every byte then went
through two protocol state machines, per-stream queues and a relay task, and the manager
returned credit on both legs — about half of its CPU per proxied request and per MiB. Spliced,
the CLI speaks the tunnel protocol with the agent itself (the CLI is the client, the agent the
server; flow control and keepalive are end to end) and the manager forwards every WebSocket
message unchanged, in order, one at a time per direction: a side that stops reading stops its
peer's messages here instead of filling the manager's memory, and the end-to-end windows bound
what can be in flight anyway.

The manager still sees everything that goes by: each direction is followed by a
:class:`~alien.protocol.frame_scan.FrameScanner`, whose events (streams opened, DATA bytes,
ends and resets) go to an observer — the audit — and whose header checks refuse what is not the
tunnel protocol *before* it is forwarded. Ending the splice (the session ended, a side broke the
protocol or left) tells each side why where it can: a GOAWAY of the manager's own, put between
two frames of that side's byte stream; then both transports are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from alien.protocol.errors import TunnelProtocolError
from alien.protocol.frame_scan import FrameScanner, ScanEvent
from alien.protocol.frames import FLOOR_SETTINGS, ErrorCode, GoAway, Hello, encode_frame
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.transport import MessageTransport

log = logging.getLogger(__name__)

Side = Literal["client", "server"]
Observer = Callable[[ScanEvent, bool], None]
"""Told every scanned event and whether it came from the client (``True``) or the server."""

GOODBYE_TIMEOUT = 1.0
"""Seconds a side is given to take the GOAWAY saying why, and its transport's close."""


@dataclass
class _Direction:
    """Messages from ``source`` to ``sink``, and what the sink has been sent so far."""

    source: MessageTransport
    sink: MessageTransport
    sender: Side
    receiver: Side
    scanner: FrameScanner = field(init=False)
    between_frames: bool = True  # what the sink got ends between two frames, no send under way
    hello_sent: bool = False  # the sender's HELLO reached the sink (scanned is not enough)
    said_goaway: bool = False  # the sender's own GOAWAY went by (the sink knows the end)

    def __post_init__(self) -> None:
        self.scanner = FrameScanner(sender=self.sender)  # its stream ids checked as they pass


class TunnelSplice:
    """Forward ``client``'s messages to ``server`` and back until either leaves or
    :meth:`abort`; every frame shown to ``observer`` first (see the module docstring)."""

    def __init__(
        self,
        client: MessageTransport,
        server: MessageTransport,
        observer: Observer,
        *,
        names: dict[Side, str] | None = None,
    ) -> None:
        """``names``: how the sides are called in the reasons given (e.g. ``"the
        deployment's agent"``)."""
        self._observer = observer
        self._names: dict[Side, str] = names or {"client": "the client", "server": "the server"}
        self._directions = (
            _Direction(client, server, "client", "server"),
            _Direction(server, client, "server", "client"),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._ending = False
        self._closed = asyncio.Event()
        self.left: Side | None = None
        """The side whose leaving ended the splice (``None``: aborted, or not ended)."""

    async def start(self) -> TunnelSplice:
        """Let messages flow (a coroutine, as :meth:`TunnelConnection.start` is: whoever lets a
        tunnel's traffic flow takes either alike)."""
        self._tasks = [
            asyncio.create_task(self._pump(d), name=f"splice-from-{d.sender}")
            for d in self._directions
        ]
        return self

    @property
    def closed(self) -> bool:
        """The splice is ending or has ended."""
        return self._ending

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def abort(self, reason: str, code: int = ErrorCode.CANCEL) -> None:
        """End the splice: each side still listening is told ``reason`` in a GOAWAY (when its
        byte stream is between frames), then both transports are closed."""
        if self._ending:
            await self._closed.wait()
            return
        self._ending = True
        pending = list(self._directions)
        try:
            current = asyncio.current_task()
            others = [task for task in self._tasks if task is not current]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            while pending:
                await self._goodbye(pending[0], reason, code)
                del pending[0]
        finally:  # cancelled while ending: no goodbye left undone leaves a transport open
            for direction in pending:
                with contextlib.suppress(Exception):
                    await direction.sink.abort()
            self._closed.set()

    async def _goodbye(self, direction: _Direction, reason: str, code: int) -> None:
        """Tell ``direction``'s sink why the tunnel ends (if it can be put in), then close it.
        The GOAWAY's last stream is the newest the sink opened: nothing it opened is refused
        by it (every stream of the tunnel ends with the transport anyway)."""
        sink = direction.sink
        opposite = self._directions[1] if direction is self._directions[0] else self._directions[0]
        listening = direction.receiver != self.left and not direction.said_goaway
        try:
            async with asyncio.timeout(GOODBYE_TIMEOUT):
                if listening and direction.between_frames:
                    goaway = encode_frame(GoAway(opposite.scanner.highest_open, code, reason))
                    if not direction.hello_sent:  # a tunnel starts with a HELLO
                        goaway = encode_frame(Hello(FLOOR_SETTINGS)) + goaway
                    await sink.send(goaway)
                await sink.close()
        except Exception:  # it would not take them (or broke): drop it
            with contextlib.suppress(Exception):
                await sink.abort()

    async def _pump(self, direction: _Direction) -> None:
        sender, receiver = direction.sender, direction.receiver
        try:
            while True:
                try:
                    message = await direction.source.recv()
                except TunnelClosed:
                    await self._leave(sender)
                    return
                for event in direction.scanner.feed(message):
                    if isinstance(event, GoAway):
                        direction.said_goaway = True
                    self._observer(event, sender == "client")
                direction.between_frames = False
                try:
                    await direction.sink.send(message)
                except TunnelClosed:
                    await self._leave(receiver)
                    return
                direction.between_frames = direction.scanner.at_boundary
                direction.hello_sent = direction.scanner.hello_seen
        except TunnelProtocolError as exc:
            name = self._names[sender]
            log.info("%s broke the protocol of a spliced tunnel: %s", name, exc.message)
            await self.abort(f"{name} broke the tunnel protocol: {exc.message}", exc.error_code)
        except Exception:
            log.exception("a spliced tunnel failed")
            await self.abort("internal error", ErrorCode.INTERNAL_ERROR)

    async def _leave(self, side: Side) -> None:
        if self._ending:
            return
        self.left = side
        await self.abort(f"{self._names[side]} closed its side of the tunnel")
