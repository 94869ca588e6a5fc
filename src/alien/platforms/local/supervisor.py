"""Keep one version of a function running: restart it when it crashes, with backoff.

A ``Supervised`` is one *version* of a function (one release, one configuration). It starts a
process, and whenever that process exits without being asked to, starts a fresh one after the
backoff delay. The moment a process exits, ``on_exit`` is told, so the platform stops routing to
and advertising its endpoints at once (with the loopback fallback, another local user could bind
a dead process's port); every time a new one becomes ready, ``on_ready`` is told its app's
endpoint, so the ingress can follow restarts (each process has its own socket). Replacing a
version by another (an update) is not done here: the platform starts the new ``Supervised`` next
to the old one and switches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from alien.errors import PlatformError
from alien.platforms.local.backoff import Backoff
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.process import FunctionProcess, OutputSink, ProcessSpec

log = logging.getLogger(__name__)

ReadyCallback = Callable[["Supervised", Endpoint | None], Awaitable[None]]
ExitCallback = Callable[["Supervised"], Awaitable[None]]


class FunctionState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Timeouts:
    """How long a process may take to become ready, and to stop before it is killed."""

    ready: float = 30.0
    grace: float = 10.0


class Supervised:
    """One version of a function, kept running until ``stop``."""

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        release: str,
        on_ready: ReadyCallback | None = None,
        on_exit: ExitCallback | None = None,
        sink: OutputSink | None = None,
        backoff: Backoff | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.spec = spec
        self.release = release
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.sink = sink
        self.backoff = backoff or Backoff()
        self.timeouts = timeouts or Timeouts()
        self.state = FunctionState.STOPPED
        self.restarts = 0
        self.last_exit: int | None = None
        self.last_error: str | None = None
        self._process: FunctionProcess | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def function(self) -> str:
        return self.spec.function

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def http(self) -> Endpoint | None:
        """The running process's app endpoint (``None``: no app, or between processes)."""
        return self._process.http if self._process else None

    @property
    def control(self) -> Endpoint | None:
        """The running process's command control endpoint (``None`` while it restarts)."""
        if self._process is None or self.state != FunctionState.RUNNING:
            return None
        return self._process.control

    async def start(self) -> Endpoint | None:
        """Start the first process and wait until it is ready; return its app's endpoint.

        A first start that fails is *not* retried: the caller (an update, ``alien dev``) wants
        to know now that this version does not work, so it can keep the old one.
        """
        self.state = FunctionState.STARTING
        process = FunctionProcess(self.spec, sink=self.sink)
        try:
            await process.start()
            http = await process.wait_ready(self.timeouts.ready)
        except BaseException:
            if process.pid is not None:
                await process.stop(self.timeouts.grace)
            self.state = FunctionState.STOPPED
            raise
        self._process = process
        self.state = FunctionState.RUNNING
        self._watch = asyncio.create_task(self._keep_running(), name=f"supervise:{self.function}")
        return http

    async def _keep_running(self) -> None:
        while True:
            assert self._process is not None
            code = await self._process.exited()
            self.last_exit = code
            self.state = FunctionState.RESTARTING
            if self.on_exit is not None:
                await self.on_exit(self)
            await self._process.wait()  # its last output, its socket files
            delay = self.backoff.next_delay(self._process.uptime)
            log.warning(
                "function %s exited with code %s; restarting in %.1fs", self.function, code, delay
            )
            await asyncio.sleep(delay)
            await self._restart_once()

    async def _restart_once(self) -> None:
        process = FunctionProcess(self.spec, sink=self.sink)
        self._process = process
        self.restarts += 1
        try:
            await process.start()
            http = await process.wait_ready(self.timeouts.ready)
        except PlatformError as exc:
            self.last_error = exc.message
            log.warning("function %s failed to restart: %s", self.function, exc.message)
            if process.pid is not None and process.returncode is None:
                await process.stop(self.timeouts.grace)
            return
        self.last_error = None
        self.state = FunctionState.RUNNING
        if self.on_ready is not None:
            await self.on_ready(self, http)

    async def stop(self) -> None:
        """Stop supervising and stop the process gracefully (SIGKILL after the grace period).

        The watch loop is cancelled first, wherever it is (waiting for an exit, sleeping out a
        backoff, or in the middle of a restart), so no new process can appear after this point;
        the process current at that moment is the only one left to stop.
        """
        self.state = FunctionState.STOPPING
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self._stop_current()
        self.state = FunctionState.STOPPED

    async def _stop_current(self) -> None:
        process = self._process
        if process is not None and process.pid is not None:
            code = await process.stop(self.timeouts.grace)
            self.last_exit = code
