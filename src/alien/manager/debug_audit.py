"""Recording every request a debug tunnel proxies, without slowing the requests down.

:class:`AuditingUpstream` wraps the re-signing upstream: it has the re-signer admit each request
(the allowlist and the credential screen) and records a refusal, names the AWS operation, counts
the bytes
that stream each way and times the exchange, and hands one :class:`RequestRecord` per request to
a :class:`RequestRecorder`. The recorder writes records in batches from a worker thread (one
transaction per batch, at most ``max_delay`` seconds after a request ended), so a burst of small
requests costs a few database writes instead of one per request and none on a request's way;
what is pending when the tunnel ends is written before the tunnel's handler returns. A batch
whose write fails (a deadlock or a dropped connection) is tried again a few times, then each of
its records alone, so one record that can never be written loses no other; what is lost is
logged as an error. Headers and bodies are never recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from alien.errors import AlienError
from alien.manager.aws_operations import operation_of
from alien.manager.db import utcnow
from alien.manager.services.debug_sessions import RequestRecord
from alien.platforms.aws.error_shape import aws_error_response, aws_status
from alien.platforms.aws.sigv4 import caller_scope
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse

log = logging.getLogger(__name__)

Writer = Callable[[list[RequestRecord]], None]
RETRY_DELAYS = (0.05, 0.25, 1.0)
"""Seconds before each new try of a batch whose write failed."""


class RequestRecorder:
    """Buffers request records and writes them in batches with ``write`` (run in a thread)."""

    def __init__(
        self,
        write: Writer,
        *,
        max_batch: int = 200,
        max_delay: float = 0.5,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._write = write
        self._retry_delays = retry_delays
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._pending: list[RequestRecord] = []
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, record: RequestRecord) -> None:
        self._pending.append(record)
        self._has_items.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="debug-audit-writer")

    async def _run(self) -> None:
        while True:
            await self._has_items.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._max_delay):
                    await self._full.wait()
            await self.flush()

    async def flush(self) -> None:
        """Write everything pending now."""
        batch, self._pending = self._pending, []
        self._has_items.clear()
        self._full.clear()
        if not batch:
            return
        for delay in (*self._retry_delays, None):
            try:
                await asyncio.to_thread(self._write, batch)
                return
            except Exception:
                if delay is None:
                    break
                log.warning("writing %d debug request audit records failed, retrying", len(batch))
                await asyncio.sleep(delay)
        await self._one_by_one(batch)

    async def _one_by_one(self, batch: list[RequestRecord]) -> None:
        """The last try of a batch that would not go: each record alone, so a record that can
        never be written (whatever made it so) takes no other request's record with it."""
        lost = 0
        for record in batch:
            try:
                await asyncio.to_thread(self._write, [record])
            except Exception:
                lost += 1
        if lost:
            log.error("could not write %d of %d debug request audit records", lost, len(batch))

    async def aclose(self) -> None:
        """Stop the background writer and write what is still pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


class ExchangeTally:
    """One proxied request as the audit sees it: its head, service and operation, when it
    started, and the bytes each way (the push model's re-signer counts them as the bodies
    stream, the pull model's splice as they go by: :mod:`alien.manager.pull_audit`)."""

    def __init__(self, head: RequestHead, service: str, operation: str = "unknown") -> None:
        self.head = head
        self.service = service
        self.operation = operation
        self.started = time.monotonic()
        self.time = utcnow()
        self.bytes_in = 0
        self.bytes_out = 0

    def request_record(
        self, status: int, *, bytes_out: int, refused: bool, error: str | None
    ) -> RequestRecord:
        return RequestRecord(
            time=self.time,
            service=self.service,
            operation=self.operation,
            method=self.head.method,
            status=status,
            bytes_in=self.bytes_in,
            bytes_out=bytes_out,
            duration_ms=(time.monotonic() - self.started) * 1000,
            refused=refused,
            error=error,
        )


class _Exchange(ExchangeTally):
    """Counts and times one request/response as its bodies stream."""

    def __init__(self, head: RequestHead, service: str) -> None:
        super().__init__(head, service)
        self.body_error: str | None = None
        """Why the caller's body stopped short, if it did (e.g. the CLI's proxy refused a
        forged chunk and reset the stream): the upstream then answers an error of its own."""

    async def count_in(self, body: Body) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                self.bytes_in += len(chunk)
                yield chunk
        except AlienError as exc:
            self.body_error = exc.message
            raise

    async def count_out(self, body: Body) -> AsyncIterator[bytes]:
        async for chunk in body:
            self.bytes_out += len(chunk)
            yield chunk

    def record(
        self, status: int, *, refused: bool = False, error: str | None = None
    ) -> RequestRecord:
        return self.request_record(
            status,
            bytes_out=self.bytes_out,
            refused=refused,
            error=error if error is not None else self.body_error,
        )


class AuditingUpstream:
    """Allowlist check, operation naming and per-request audit around the re-signer."""

    def __init__(self, inner: AwsResigningUpstream, recorder: RequestRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        exchange = _Exchange(head, "unknown")
        try:
            scope = caller_scope(head.target, head.headers)
            exchange.service = scope.service
            exchange.operation, body = await operation_of(scope.service, head, body)
            request = await self._inner.admit(head, exchange.count_in(body), scope)
        except AlienError as exc:
            self._recorder.add(exchange.record(aws_status(exc), refused=True, error=exc.message))
            return aws_error_response(head, exc)
        try:
            response = await self._inner.forward(request)
        except AlienError as exc:
            self._recorder.add(exchange.record(aws_status(exc), error=exc.message))
            raise
        inner_close = response.close
        recorded = False

        async def close() -> None:
            nonlocal recorded
            try:
                await inner_close()
            finally:
                if not recorded:
                    recorded = True
                    self._recorder.add(exchange.record(response.head.status))

        return UpstreamResponse(
            head=response.head, body=exchange.count_out(response.body), close=close
        )
