"""uvicorn's HTTP protocol with each loop turn's writes sent together (``http=CoalescingHttp``).

Why: uvicorn writes a response's head and its body with two ``transport.write`` calls, and each
is a system call; on a small answer the first costs most of the time the answer takes to leave
(on loopback, the sender's ``send`` also does the receiver's network processing and wakes it).
A remote command's round trip crosses two such servers (the manager's, the function's control
endpoint), each answering one small response, so a send saved per response is saved on the
critical path of every command.

:class:`_HoldingTransport` keeps what is written during one turn of the event loop and sends it
at the end of the turn, joined when small (one ``send`` instead of two or more), and writes a
large piece (a streamed body, a tunnel's bulk message) through at once. Everything else is the
real transport's — closing flushes first, aborting drops. WebSocket connections upgraded from
these inherit it: messages queued in one turn leave in one send as well.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

JOIN_LIMIT = 64 * 1024
"""Held bytes are joined up to this size; past it pieces are written as they are (no copy)."""


class _HoldingTransport:
    """An asyncio transport whose writes of one loop turn leave together (see module doc)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if not size:
            return
        if not self._held and size >= JOIN_LIMIT:
            self._transport.write(data)
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data) if size < JOIN_LIMIT else data)  # type: ignore[arg-type]
        self._held_size += size
        if self._held_size >= JOIN_LIMIT:
            self._flush()

    def writelines(self, pieces: Any) -> None:
        for piece in pieces:
            self.write(piece)

    def _flush(self) -> None:
        held, self._held, self._held_size = self._held, [], 0
        if not held or self._transport.is_closing():
            return
        if len(held) == 1:
            self._transport.write(held[0])
        elif sum(len(piece) for piece in held) <= JOIN_LIMIT:
            self._transport.write(b"".join(held))
        else:
            for piece in held:
                self._transport.write(piece)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._held_size = [], 0
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_size

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`_HoldingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        holding = _HoldingTransport(transport, self.loop)
        super().connection_made(holding)  # type: ignore[arg-type]
