"""One function process: spawn it, capture its output, know when it is ready, stop it cleanly.

The child is the function runtime (``python -m alien.sdk.runtime``). Its stdout and stderr go
through a pipe to this process, which appends them to ``logs/<function>.log``, optionally echoes
them, and watches for the runtime's ready line::

    alien-runtime: ready function=<id> url=http://127.0.0.1:<port> control=unix:<socket>

(``url=`` is absent for a function without HTTP, ``control=`` for one without commands). The
runtime binds its own port and reports it here, so there is no window in which a port picked by
the platform could be taken by someone else. A spec with a ``control_dir`` gets a fresh
:class:`~alien.platforms.local.control.ControlGrant` per process (token and socket), added to
its environment at spawn time only.

The child leads its own process group: a terminal's Ctrl-C reaches only the platform, which stops
children in order, and a stop can sweep up anything the function itself spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alien.errors import PlatformError
from alien.platforms.local.control import ControlEndpoint, ControlGrant

READY_LINE = re.compile(
    r"^alien-runtime: ready function=(?P<function>\S+)(?: url=(?P<url>\S+))?"
    r"(?: control=(?P<control>\S+))?"
)
LOG_ROTATE_BYTES = 10 * 1024 * 1024
_TAIL_LINES = 20

OutputSink = Callable[[str, str], None]
"""Called with (function, line) for each line a function prints (``alien dev`` echoes them)."""


@dataclass(frozen=True)
class ProcessSpec:
    """Everything needed to start one function process."""

    function: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log_file: Path
    control_dir: Path | None = None
    """Where the process's command control socket goes; ``None``: commands are not enabled."""


@dataclass
class _Output:
    """Line splitting, the tail kept for error messages, and the ready signal."""

    function: str
    sink: OutputSink | None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    url: str | None = None
    control: str | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    _partial: bytes = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", errors="replace").rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial.decode("utf-8", errors="replace"))
            self._partial = b""

    def _line(self, line: str) -> None:
        self.tail.append(line)
        if not self.ready.is_set():
            match = READY_LINE.match(line)
            if match and match["function"] == self.function:
                self.url = match["url"]
                self.control = match["control"]
                self.ready.set()
        if self.sink is not None:
            self.sink(self.function, line)


class FunctionProcess:
    """A single run of a function process. Not restartable: the supervisor makes new ones."""

    def __init__(self, spec: ProcessSpec, *, sink: OutputSink | None = None) -> None:
        self.spec = spec
        self._output = _Output(spec.function, sink)
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._grant = (
            ControlGrant.issue(spec.control_dir, spec.function) if spec.control_dir else None
        )
        self._control: ControlEndpoint | None = None
        self.started_at: float | None = None
        self.exited_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def url(self) -> str | None:
        return self._output.url

    @property
    def control(self) -> ControlEndpoint | None:
        """The command control endpoint it reported ready with (``None``: no commands)."""
        return self._control

    @property
    def uptime(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.exited_at or time.monotonic()) - self.started_at

    def tail(self) -> str:
        """The last lines the process printed, for error messages."""
        return "\n".join(self._output.tail)

    async def start(self) -> None:
        if self._proc is not None:
            raise PlatformError(f"process for {self.spec.function} already started")
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = self.spec.env | (self._grant.environment() if self._grant else {})
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                cwd=self.spec.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlatformError(
                f"cannot start function {self.spec.function}: {exc}", field=self.spec.function
            ) from exc
        self.started_at = time.monotonic()
        self._pump = asyncio.create_task(self._pump_output(), name=f"log:{self.spec.function}")

    async def _pump_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        with _LogWriter(self.spec.log_file) as log:
            while chunk := await stream.read(65536):
                log.write(chunk)
                self._output.feed(chunk)
            self._output.flush()

    async def wait_ready(self, timeout: float) -> str | None:
        """Wait for the ready line; return the URL it announced (``None``: no HTTP).

        Raises ``PlatformError`` with the process's last output if it exits or stays silent.
        """
        proc = self._require()
        ready = asyncio.create_task(self._output.ready.wait())
        exited = asyncio.create_task(proc.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (ready, exited):
                task.cancel()
        if ready in done or self._output.ready.is_set():
            if self._grant is not None:
                self._control = self._grant.accept(self._output.control)
            return self._output.url
        if exited in done:
            await self._finish_output()
            raise self._failure(f"exited with code {proc.returncode} before it was ready")
        raise self._failure(f"was not ready after {timeout:g}s")

    def _failure(self, what: str) -> PlatformError:
        tail = self.tail()
        detail = f"; last output:\n{tail}" if tail else ""
        return PlatformError(
            f"function {self.spec.function} {what}{detail}",
            field=self.spec.function,
            details={"function": self.spec.function, "output": tail},
        )

    async def wait(self) -> int:
        """Wait for the process to exit (for any reason); return its exit code."""
        code = await self._require().wait()
        self.exited_at = self.exited_at or time.monotonic()
        self._control = None
        if self._grant is not None:
            self._grant.release()
        await self._finish_output()
        return code

    async def stop(self, grace: float) -> int:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; return the exit code.

        SIGTERM lets the runtime finish in-flight requests and handlers. Whatever survives the
        grace period, or was left behind in the group by the function, is killed.
        """
        proc = self._require()
        if proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
        code = await self.wait()
        self._signal_group(signal.SIGKILL)  # stragglers the function spawned
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        proc = self._require()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    async def _finish_output(self) -> None:
        # A grandchild holding the pipe open must not block us: the output is best effort.
        if self._pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self._pump)

    def _require(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise PlatformError(f"process for {self.spec.function} not started")
        return self._proc


class _LogWriter:
    """Append-only log file with one generation of size-based rotation (``.log.1``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by __exit__

    def __enter__(self) -> _LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        if self._fh.tell() >= LOG_ROTATE_BYTES:
            self._fh.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115
