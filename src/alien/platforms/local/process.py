"""One function process: spawn it, capture its output, know when it is ready, stop it cleanly.

The child is the function runtime (``python -m alien.sdk.runtime``). Its stdout and stderr go
through a pipe to this process, which appends them to ``logs/<function>.log``, optionally echoes
them, and watches for the runtime's ready line::

    alien-runtime: ready function=<id> http=unix:<socket> control=unix:<socket>

(``http=`` is absent for a function without an HTTP app, ``control=`` for one without commands).
Every process is granted a fresh endpoint (:class:`~alien.platforms.local.endpoints.Grant`: a
token and a socket in ``run_dir``) for its app and, with commands, one for its control API, given
at spawn time only (the addresses in its environment, the tokens through an inherited pipe, see
``alien.protocol.runtime_secrets``); the runtime binds them itself and reports them here.

The child leads its own process group: a terminal's Ctrl-C reaches only the platform, which stops
children in order, and a stop can sweep up anything the function itself spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from alien.errors import PlatformError
from alien.platforms.local.endpoints import CONTROL, HTTP, Endpoint, EndpointKind, Grant
from alien.protocol.runtime_secrets import SECRETS_FD_VARIABLE

READY_LINE = re.compile(
    r"^alien-runtime: ready function=(?P<function>\S+)(?: http=(?P<http>\S+))?"
    r"(?: control=(?P<control>\S+))?"
)
LOG_ROTATE_BYTES = 10 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
"""Longest line the platform handles whole; longer ones reach the tail and the sink in pieces."""
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
    run_dir: Path
    """Where the process's sockets go (the area's ``run/``)."""
    commands: bool = False
    """Whether it gets a command control endpoint besides its app's."""


@dataclass
class _Output:
    """Line splitting, the tail kept for error messages, and the ready signal.

    Runs on the platform's event loop for every chunk a function prints, so it must stay linear
    and bounded whatever the function prints: each chunk is searched once for newlines, and a
    line longer than ``MAX_LINE_BYTES`` is cut into pieces of that size (the log file has the
    raw bytes; the tail, the ready-line match and the sink see the pieces).
    """

    function: str
    sink: OutputSink | None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reported: dict[str, str | None] = field(default_factory=dict)
    """Kind name (``http``, ``control``) → the address the ready line gave for it."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    _pending: list[bytes] = field(default_factory=list)
    """The current line's pieces so far (fewer than ``MAX_LINE_BYTES`` bytes in all)."""
    _pending_bytes: int = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._extend(chunk[start:end])
            self._emit(strip_cr=True)
            start = end + 1
        self._extend(chunk[start:])

    def flush(self) -> None:
        if self._pending:
            self._emit(strip_cr=False)

    def _extend(self, piece: bytes) -> None:
        """Add to the current line; emit it each time it reaches the cap and more follows."""
        while self._pending_bytes + len(piece) > MAX_LINE_BYTES:
            room = MAX_LINE_BYTES - self._pending_bytes
            self._pending.append(piece[:room])
            self._emit(strip_cr=False)
            piece = piece[room:]
        if piece:
            self._pending.append(piece)
            self._pending_bytes += len(piece)

    def _emit(self, *, strip_cr: bool) -> None:
        text = b"".join(self._pending).decode("utf-8", errors="replace")
        self._pending, self._pending_bytes = [], 0
        self._line(text.rstrip("\r") if strip_cr else text)

    def _line(self, line: str) -> None:
        self.tail.append(line)
        if not self.ready.is_set():
            match = READY_LINE.match(line)
            if match and match["function"] == self.function:
                self.reported = {kind.name: match[kind.name] for kind in (HTTP, CONTROL)}
                self.ready.set()
        if self.sink is not None:
            self.sink(self.function, line)


class _ExitWatch(asyncio.subprocess.SubprocessStreamProtocol):
    """The standard subprocess protocol, plus an event set the moment the child exits.

    ``Process.wait()`` resolves only once the child's pipes close as well, and a grandchild that
    inherited its stdout keeps them open for as long as it lives: the platform would go on
    routing to, and advertising, endpoints of a process that is gone.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class FunctionProcess:
    """A single run of a function process. Not restartable: the supervisor makes new ones."""

    def __init__(self, spec: ProcessSpec, *, sink: OutputSink | None = None) -> None:
        self.spec = spec
        self._output = _Output(spec.function, sink)
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        kinds = (HTTP, CONTROL) if spec.commands else (HTTP,)
        self._grants = [Grant.issue(kind, spec.run_dir, spec.function) for kind in kinds]
        self._endpoints: dict[EndpointKind, Endpoint] = {}
        self.started_at: float | None = None
        self.exited_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def http(self) -> Endpoint | None:
        """The app's endpoint it reported ready with (``None``: no HTTP app)."""
        return self._endpoints.get(HTTP)

    @property
    def control(self) -> Endpoint | None:
        """The command control endpoint it reported ready with (``None``: no commands)."""
        return self._endpoints.get(CONTROL)

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
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = dict(self.spec.env)
        secrets: dict[str, str] = {}
        for grant in self._grants:
            env |= grant.environment()
            secrets |= grant.secrets()
        pipe = _secrets_pipe(secrets)
        env[SECRETS_FD_VARIABLE] = str(pipe)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitWatch(limit=2**16, loop=loop),
                *self.spec.argv,
                cwd=self.spec.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(pipe,),
            )
        except OSError as exc:
            raise PlatformError(
                f"cannot start function {self.spec.function}: {exc}", field=self.spec.function
            ) from exc
        finally:
            os.close(pipe)  # the child has its own copy
        self._proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._exit = protocol.exited
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

    async def wait_ready(self, timeout: float) -> Endpoint | None:
        """Wait for the ready line; return the app's endpoint it announced (``None``: no app).

        Raises ``PlatformError`` with the process's last output if it exits or stays silent.
        """
        proc = self._require()
        ready = asyncio.create_task(self._output.ready.wait())
        exited = asyncio.create_task(self.exited())
        try:
            done, _ = await asyncio.wait(
                {ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (ready, exited):
                task.cancel()
        if ready in done or self._output.ready.is_set():
            self._accept(self._output.reported)
            return self.http
        if exited in done:
            await self._finish_output()
            raise self._failure(f"exited with code {proc.returncode} before it was ready")
        raise self._failure(f"was not ready after {timeout:g}s")

    def _accept(self, reported: dict[str, str | None]) -> None:
        """Keep the endpoints the process reported, each only if it is the one granted."""
        for grant in self._grants:
            endpoint = grant.accept(reported.get(grant.kind.name))
            if endpoint is not None:
                self._endpoints[grant.kind] = endpoint

    def _failure(self, what: str) -> PlatformError:
        tail = self.tail()
        detail = f"; last output:\n{tail}" if tail else ""
        return PlatformError(
            f"function {self.spec.function} {what}{detail}",
            field=self.spec.function,
            details={"function": self.spec.function, "output": tail},
        )

    async def exited(self) -> int:
        """Wait for the process itself to exit (for any reason); return its exit code.

        Its endpoints are gone from this moment (``http``, ``control``: ``None``); its last
        output and its socket files are dealt with by ``wait``.
        """
        proc = self._require()
        assert self._exit is not None
        await self._exit.wait()
        self.exited_at = self.exited_at or time.monotonic()
        self._endpoints.clear()
        assert proc.returncode is not None
        return proc.returncode

    async def wait(self) -> int:
        """``exited``, then its last output captured and its sockets removed."""
        code = await self.exited()
        for grant in self._grants:
            grant.release()
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
                    await self.exited()
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


def _secrets_pipe(secrets: dict[str, str]) -> int:
    """The read end of a pipe already holding ``secrets`` (JSON) and closed for writing.

    A few hundred bytes: far below a pipe's capacity, so the write cannot block.
    """
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, json.dumps(secrets).encode())
    finally:
        os.close(write_end)
    return read_end


def _open_private(path: Path) -> BinaryIO:
    """``path`` for appending, 0600 whatever the umask: function output may hold secrets.

    A file left with a wider mode (by an older version) is narrowed as well.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return open(fd, "ab", buffering=0)


class _LogWriter:
    """Append-only log file with one generation of size-based rotation (``.log.1``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = _open_private(path)

    def __enter__(self) -> _LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        if self._fh.tell() >= LOG_ROTATE_BYTES:
            self._fh.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._fh = _open_private(self.path)
