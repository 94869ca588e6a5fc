"""Bounds on what callers can hold of a function's HTTP servers without ever being let in.

On the loopback fallback (``tcp:127.0.0.1:<port>``, for an area too deep for a socket path) any
local process can connect, and the token is only checked once a request's head is complete.
uvicorn times out idle keep-alive connections, but not one that is still sending a head: a
caller could open connections, send a few header bytes each and hold them (and their buffers)
forever. :class:`HeadDeadlineHttp` closes a connection whose request head is not complete
``HEADER_TIMEOUT`` seconds after the connection (or that request's first byte), and
``CONCURRENCY_LIMIT`` caps the connections and requests a server works on at once (beyond it
uvicorn answers 503): bounded, and below the usual 1024 open files, so the answer is a 503
rather than a failing ``accept``. The platform sends a whole head at once, so neither is felt
on its side.
"""

from __future__ import annotations

import asyncio

from alien.serving import CoalescingHttp

HEADER_TIMEOUT = 10.0
CONCURRENCY_LIMIT = 1000


class HeadDeadlineHttp(CoalescingHttp):
    """uvicorn's (coalescing) httptools protocol with a deadline on every request head."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all is held to it too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(HEADER_TIMEOUT, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
