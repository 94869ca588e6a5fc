"""Function processes: readiness, output capture, graceful stop, restarts with backoff."""

from __future__ import annotations

import asyncio
import os
import random
import stat
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import psutil
import pytest

from alien.errors import PlatformError
from alien.platforms.local.backoff import Backoff
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.process import (
    LOG_ROTATE_BYTES,
    MAX_LINE_BYTES,
    FunctionProcess,
    ProcessSpec,
    _LogWriter,
    _Output,
)
from alien.platforms.local.supervisor import FunctionState, Supervised, Timeouts

# A stand-in for the runtime: the same ready-line protocol, none of the start-up cost.
SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    mode = sys.argv[1]
    runs = os.path.join(os.getcwd(), "runs")
    with open(runs, "a") as f:
        f.write("x")
    run = len(open(runs).read())
    print(f"starting run {run}", flush=True)
    if mode == "crash":
        sys.exit(3)
    if mode == "silent":
        time.sleep(60)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "family":
        print("grandchild", subprocess.Popen(["sleep", "60"]).pid, flush=True)
    def bye(*_):
        os.write(1, b"graceful bye\\n")  # not print(): it may be interrupted mid-print
        os._exit(0)
    if mode != "stubborn":
        signal.signal(signal.SIGTERM, bye)
    print(f"alien-runtime: ready function=fn http={os.environ['ALIEN_HTTP_ADDRESS']}", flush=True)
    if mode == "crash-once" and run == 1:
        sys.exit(1)
    while True:
        time.sleep(1)
    """
)


def _spec(tmp_path: Path, mode: str) -> ProcessSpec:
    (tmp_path / "fn.py").write_text(SCRIPT)
    return ProcessSpec(
        function="fn",
        argv=[sys.executable, "fn.py", mode],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log_file=tmp_path / "logs" / "fn.log",
        run_dir=tmp_path,
    )


def _granted_socket(endpoint: Endpoint | None, run_dir: Path) -> Path:
    """The app socket an endpoint names: a fresh one in ``run_dir`` for every process."""
    assert endpoint is not None and endpoint.unix_path is not None
    path = Path(endpoint.unix_path)
    assert path.parent == run_dir and path.name.startswith("http-") and len(endpoint.token) >= 32
    return path


async def test_ready_line_endpoint_and_output_go_to_the_log_and_the_sink(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    process = FunctionProcess(
        _spec(tmp_path, "serve"), sink=lambda fn, line: lines.append((fn, line))
    )
    await process.start()
    _granted_socket(await process.wait_ready(10), tmp_path)
    assert await process.stop(grace=5) == 0
    log = (tmp_path / "logs" / "fn.log").read_text()
    assert "starting run 1" in log and "graceful bye" in log  # SIGTERM handled gracefully
    assert ("fn", "graceful bye") in lines


async def test_the_log_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Function output may hold secrets: the log is 0600 like every other file of the area,
    also one left readable by an older version, and its rotated generation."""
    log = tmp_path / "logs" / "fn.log"
    log.parent.mkdir()
    log.write_bytes(b"old\n")
    log.chmod(0o644)
    previous = os.umask(0)
    try:
        process = FunctionProcess(_spec(tmp_path, "serve"))
        await process.start()
        await process.wait_ready(10)
        await process.stop(grace=5)
        with _LogWriter(tmp_path / "logs" / "big.log") as big:
            big.write(b"x" * LOG_ROTATE_BYTES)
    finally:
        os.umask(previous)
    for path in (log, tmp_path / "logs" / "big.log", tmp_path / "logs" / "big.log.1"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_huge_line_is_handled_in_linear_time_and_bounded_memory() -> None:
    """50 MiB without a newline once took seconds of the platform's loop (each chunk was joined
    to everything before it) and held all of it; now it passes through in capped pieces."""
    lengths: list[int] = []
    output = _Output("fn", lambda fn, line: lengths.append(len(line)))
    chunk = b"x" * 65536
    tracemalloc.start()
    started = time.perf_counter()
    for _ in range(800):  # 50 MiB
        output.feed(chunk)
    output.feed(b"yy\nalien-runtime: ready function=fn http=unix:/r/http-1.sock\r\n")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 4 * 1024 * 1024, (elapsed, peak)
    assert lengths[:-2] == [MAX_LINE_BYTES] * 800 and lengths[-2] == 2  # in pieces, none lost
    assert output.ready.is_set() and output.reported["http"] == "unix:/r/http-1.sock"
    assert output.tail[-1].endswith(".sock") and len(output.tail) == 20


def test_lines_split_across_chunks_are_joined() -> None:
    lines: list[str] = []
    output = _Output("fn", lambda fn, line: lines.append(line))
    for chunk in (b"he", b"llo\r", b"\nwor", b"ld\n\nlast"):
        output.feed(chunk)
    output.flush()
    assert lines == ["hello", "world", "", "last"]


async def test_exiting_before_ready_fails_with_its_last_output(tmp_path: Path) -> None:
    process = FunctionProcess(_spec(tmp_path, "crash"))
    await process.start()
    with pytest.raises(PlatformError, match="exited with code 3 before it was ready") as info:
        await process.wait_ready(10)
    assert "starting run 1" in info.value.message and info.value.field == "fn"


async def test_silence_is_a_ready_timeout(tmp_path: Path) -> None:
    process = FunctionProcess(_spec(tmp_path, "silent"))
    await process.start()
    with pytest.raises(PlatformError, match=r"not ready after 0\.3s"):
        await process.wait_ready(0.3)
    await process.stop(grace=1)


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    process = FunctionProcess(_spec(tmp_path, "stubborn"))
    await process.start()
    await process.wait_ready(10)
    assert await process.stop(grace=0.3) == -9


async def test_stop_leaves_nothing_the_function_spawned(tmp_path: Path) -> None:
    lines: list[str] = []
    process = FunctionProcess(_spec(tmp_path, "family"), sink=lambda fn, line: lines.append(line))
    await process.start()
    await process.wait_ready(10)
    grandchild = int(next(x for x in lines if x.startswith("grandchild")).split()[1])
    await process.stop(grace=5)
    assert _gone(grandchild)  # killed with the function's process group


async def test_an_exit_is_seen_at_once_though_a_grandchild_holds_the_output(
    tmp_path: Path,
) -> None:
    """The grandchild inherited the stdout pipe: waiting for the pipe to close (what asyncio's
    ``Process.wait`` does) would leave the dead process's endpoints in use for its whole life."""
    lines: list[str] = []
    process = FunctionProcess(_spec(tmp_path, "family"), sink=lambda fn, line: lines.append(line))
    await process.start()
    await process.wait_ready(10)
    grandchild = int(next(x for x in lines if x.startswith("grandchild")).split()[1])
    assert process.http is not None and process.pid is not None
    os.kill(process.pid, 9)
    assert await asyncio.wait_for(process.exited(), 3) == -9
    assert process.http is None and psutil.pid_exists(grandchild)
    await process.stop(grace=1)
    assert _gone(grandchild)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its new parent's reaping counts)."""
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return proc.status() == psutil.STATUS_ZOMBIE
    return True


async def test_a_crash_is_restarted_with_backoff_and_the_new_endpoint_reported(
    tmp_path: Path,
) -> None:
    reported: asyncio.Queue[Endpoint | None] = asyncio.Queue()

    async def on_ready(sup: Supervised, http: Endpoint | None) -> None:
        await reported.put(http)

    sup = Supervised(
        _spec(tmp_path, "crash-once"),
        release="r1",
        on_ready=on_ready,
        backoff=Backoff(base=0.05, cap=0.1, rng=random.Random(0)),
        timeouts=Timeouts(ready=10, grace=5),
    )
    first = _granted_socket(await sup.start(), tmp_path)  # then it crashes at once
    second = await asyncio.wait_for(reported.get(), 10)
    assert _granted_socket(second, tmp_path) != first
    assert sup.restarts == 1 and sup.last_exit == 1 and sup.state == FunctionState.RUNNING
    assert sup.http == second
    pid = sup.pid
    await sup.stop()
    assert sup.state == FunctionState.STOPPED and pid is not None and not psutil.pid_exists(pid)


async def test_a_first_start_that_fails_is_not_retried(tmp_path: Path) -> None:
    sup = Supervised(_spec(tmp_path, "crash"), release="r1")
    with pytest.raises(PlatformError):
        await sup.start()
    assert sup.state == FunctionState.STOPPED
    assert (tmp_path / "runs").read_text() == "x"  # one attempt only


async def test_stop_during_a_backoff_wait_starts_nothing_new(tmp_path: Path) -> None:
    sup = Supervised(
        _spec(tmp_path, "crash-once"),
        release="r1",
        backoff=Backoff(base=30, cap=30),  # the restart would come much later
    )
    await sup.start()
    while sup.state != FunctionState.RESTARTING:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(sup.stop(), 5)
    assert (tmp_path / "runs").read_text() == "x"
