"""The agent's end of a debug tunnel leg carried by plain HTTP requests (for an agent that
long-polls because a proxy refuses WebSockets); the manager's end and the exchange are
described in :mod:`alien.manager.debug_http_leg`, the numbering in
:mod:`alien.protocol.tunnel_leg`.

A :class:`~alien.tunnel.transport.MessageTransport`: a tunnel connection runs over it as over a
WebSocket. Two loops move the messages — ``up`` posts what was sent (one request at a time, in
order; the answer acknowledges), ``down`` long-polls for what the manager has — and each
request that fails on the way (a proxy dropping a connection, a manager restart) is made again,
with the same numbers, for up to :data:`RETRY_WINDOW` seconds, so no message is lost or applied
twice. Backpressure: ``send`` waits while more than :data:`SEND_LIMIT` bytes are not yet
acknowledged, and ``down`` asks for more only once the tunnel took what came.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx

from alien.protocol.tunnel_leg import (
    BATCH_TYPE,
    FIRST_HEADER,
    LEG_ID_HEADER,
    MAX_DOWN_WAIT,
    Inbox,
    Outbox,
    decode_batch,
    encode_batch,
)
from alien.tunnel.errors import TunnelClosed

log = logging.getLogger(__name__)

SEND_LIMIT = 8 * 1024 * 1024
RECEIVED_LIMIT = 64
"""Messages received and not yet taken by the tunnel before ``down`` stops asking."""
RETRY_WINDOW = 30.0
"""Seconds a pipe keeps retrying a failed request before the leg is given up."""
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
GONE = 410


class _Ended(Exception):
    """Ends a pipe's loop once the leg has ended."""


class LegRefused(Exception):
    """The manager refused to open the leg (its status and error body)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"the manager refused the HTTP leg with HTTP {status}")
        self.status = status
        self.body = body


class HttpLegClient:
    """One open HTTP leg (see the module docstring); made by :meth:`open`."""

    def __init__(self, client: httpx.AsyncClient, leg_path: str) -> None:
        self._client = client
        self._path = leg_path
        self._outbox = Outbox()
        self._inbox = Inbox()
        self._received: asyncio.Queue[bytes] = asyncio.Queue(RECEIVED_LIMIT)
        self._changed = asyncio.Event()  # something was sent, acknowledged, or the leg ended
        self._ended: str | None = None
        self._loops = [
            asyncio.create_task(self._pipe(self._up), name="http-leg-up"),
            asyncio.create_task(self._pipe(self._down), name="http-leg-down"),
        ]

    @classmethod
    async def open(
        cls,
        base_url: str,
        tunnel_path: str,
        headers: dict[str, str],
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> HttpLegClient:
        """Open the leg at ``tunnel_path`` (``headers``: the agent's token and the one-time
        credential). Raises :class:`LegRefused`, or ``httpx.HTTPError`` when unreachable."""
        client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={k: v for k, v in headers.items() if k.lower() == "authorization"},
            timeout=httpx.Timeout(timeout, read=MAX_DOWN_WAIT + timeout),
            transport=transport,
        )
        try:
            answer = await client.post(f"{tunnel_path}/http", headers=headers)
            if answer.status_code != 201:
                raise LegRefused(answer.status_code, answer.content[:4096])
            client.headers[LEG_ID_HEADER] = str(answer.json()["leg_id"])
        except BaseException:
            await client.aclose()
            raise
        return cls(client, f"{tunnel_path}/http")

    # --- the transport ------------------------------------------------------------------------

    async def send(self, data: bytes | memoryview) -> None:
        self._check()
        self._outbox.put(bytes(data))
        self._wake()
        while self._outbox.unacknowledged_bytes > SEND_LIMIT:
            await self._changed.wait()
            self._check()

    async def recv(self) -> bytes:
        if self._received.empty():
            self._check()
        getting = asyncio.ensure_future(self._received.get())
        while not getting.done():
            ended = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait({getting, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if not getting.done() and self._ended is not None:
                getting.cancel()
                self._check()
        return getting.result()

    async def close(self) -> None:
        """Leave once what was sent is acknowledged (a moment at most), then say so."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while self._outbox.unacknowledged_bytes and self._ended is None:
                    await self._changed.wait()
        await self.abort()

    async def abort(self) -> None:
        if self._ended is None:
            self._end("the agent left the tunnel")
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(self._path, timeout=2.0)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._client.aclose()

    # --- the two pipes ------------------------------------------------------------------------

    async def _up(self) -> None:
        while self._ended is None:
            first, messages = self._outbox.batch()
            if not messages:
                await self._changed.wait()
                continue
            answer = await self._request(
                "POST",
                f"{self._path}/up",
                params={"seq": first},
                content=encode_batch(messages),
                headers={"content-type": BATCH_TYPE},
            )
            if answer is None:
                return
            with self._ending_on_nonsense("up"):
                self._outbox.acknowledge(int(answer.json()["received"]))
            self._wake()

    async def _down(self) -> None:
        while self._ended is None:
            answer = await self._request(
                "GET",
                f"{self._path}/down",
                params={"ack": self._inbox.received, "wait": MAX_DOWN_WAIT},
            )
            if answer is None:
                return
            with self._ending_on_nonsense("down"):
                first = int(answer.headers[FIRST_HEADER])
                fresh = self._inbox.accept(first, decode_batch(answer.content))
            for message in fresh:
                await self._received.put(message)
            self._wake()

    @contextlib.contextmanager
    def _ending_on_nonsense(self, pipe: str) -> Iterator[None]:
        """An answer that is not the manager's (a proxy's page, a broken batch, numbers that
        do not add up) ends the leg: going on could only lose or repeat messages."""
        try:
            yield
        except Exception as exc:
            self._end(f"the {pipe} answer made no sense ({type(exc).__name__})")
            raise _Ended from None

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        """The answer to a request made until it succeeds; ``None`` once the leg has ended
        (the manager closed it, refused the request, or could not be reached for
        :data:`RETRY_WINDOW` seconds from the first failure)."""
        deadline: float | None = None
        for attempt in itertools.count():
            try:
                answer = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:
                why = f"the manager could not be reached: {type(exc).__name__}"
            else:
                if answer.status_code < 300:
                    return answer
                if answer.status_code == GONE:
                    self._end("the manager closed the tunnel")
                    return None
                why = f"the manager answered HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code != 429:
                    self._end(why)
                    return None
            now = time.monotonic()
            deadline = deadline or now + RETRY_WINDOW
            if now >= deadline:
                self._end(why)
                return None
            await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        raise AssertionError("unreachable")

    async def _pipe(self, loop: Callable[[], Awaitable[None]]) -> None:
        with contextlib.suppress(_Ended):
            await loop()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _end(self, why: str) -> None:
        if self._ended is None:
            self._ended = why
            log.info("debug tunnel HTTP leg ended: %s", why)
        self._wake()

    def _check(self) -> None:
        if self._ended is not None:
            raise TunnelClosed(self._ended)
