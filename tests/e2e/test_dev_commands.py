"""``alien dev command`` end to end: the pages example under a real ``alien dev``, commands run
from a second real CLI process, found through the dev area (``run/control.json``)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pages"
URL_LINE = re.compile(r"^alien dev: api → (http://\S+)$")
CLI = [sys.executable, "-m", "alien.cli.main", "dev"]

# Added to this test's copy of the example: a command that runs until the test lets it finish.
HOLD = """

@alien.command("hold")
def hold(marker: str, release: str, ctx: alien.CommandContext) -> dict:
    import os, pathlib
    pathlib.Path(marker).touch()
    while not pathlib.Path(release).exists():
        if ctx.wait_cancelled_blocking(0.02):
            ctx.raise_if_cancelled()
    return {"pid": os.getpid()}
"""


class Dev:
    """A running ``alien dev`` with its output collected line by line."""

    def __init__(self, app_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "--path", str(app_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, start: int = 0, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found.extend(m for line in self.lines[start:] if (m := regex.search(line)))
            return bool(found)

        with self._changed:
            assert self._changed.wait_for(seen, timeout), "\n".join(self.lines)
        return found[0]


def command(app_dir: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "command", name, "--path", str(app_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "pages"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns(".alien", "__pycache__"))
    stack = app / "alien_stack.py"
    text = stack.read_text()
    if ".commands_enabled()" not in text:  # until the example's stack turns commands on itself
        stack.write_text(
            text.replace('.ingress("public")', '.ingress("public")\n    .commands_enabled()')
        )
    with (app / "api" / "app.py").open("a") as source:
        source.write(HOLD)
    return app


@pytest.fixture
def dev(app_dir: Path) -> Iterator[Dev]:
    running = Dev(app_dir)
    yield running
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGINT)
        try:
            running.proc.wait(30)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(running.proc.pid).children(recursive=True):
                child.kill()
            running.proc.kill()
            running.proc.wait()


def test_without_a_session_the_command_says_so(app_dir: Path) -> None:
    done = command(app_dir, "page-stats", "--params", '{"name": "x"}')
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: no `alien dev` session is running in {app_dir}: start one first (path)"
    ]


def test_commands_run_in_the_dev_session(app_dir: Path, dev: Dev) -> None:
    url = dev.wait_for(URL_LINE.pattern)[1]

    done = command(app_dir, "page-stats", "--params", '{"name": "x"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"views": 0, "words": None, "last_event": None}

    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.put("/pages/home", content="hello big world").status_code == 200
        client.get("/pages/home")
    report = command(app_dir, "generate-report", "--json")
    assert report.returncode == 0, report.stderr
    outcome = json.loads(report.stdout)
    assert outcome["ok"] and outcome["function"] == "api"
    assert outcome["command_id"].startswith("cmd_")
    assert outcome["result"] == {
        "pages": [{"name": "home", "size": 15, "views": 1}],
        "total_bytes": 15,
    }

    # a handler that raises: a structured failure, one line, exit code 1
    failed = command(app_dir, "generate-report", "--params", '{"limit": 0}')
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [
        "error: HANDLER_ERROR: ValueError: limit must be at least 1"
    ]
    as_json = command(app_dir, "generate-report", "--params", '{"limit": 0}', "--json")
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "HANDLER_ERROR"
    assert error["details"] == {"type": "builtins.ValueError"}  # no traceback unless opted in

    unknown = command(app_dir, "page-count")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "error: UNKNOWN_COMMAND: unknown command 'page-count'; "
        "known commands: generate-report, hold, page-stats"
    )
    invalid = command(app_dir, "page-stats", "--params", '{"page": "x"}')
    assert invalid.returncode == 1 and "INVALID_PARAMS" in invalid.stderr
    not_json = command(app_dir, "page-stats", "--params", "{name: x}")
    assert not_json.returncode == 1 and "--params is not JSON" in not_json.stderr
    no_target = command(app_dir, "page-stats", "--target", "web")
    assert no_target.returncode == 1
    assert "'web' is not a function of the stack with commands enabled (those are: api)" in (
        no_target.stderr
    )


def test_a_command_running_across_a_reload_completes(
    app_dir: Path, dev: Dev, tmp_path: Path
) -> None:
    dev.wait_for(URL_LINE.pattern)
    marker, release = tmp_path / "started", tmp_path / "release"
    params = json.dumps({"marker": str(marker), "release": str(release)})
    running = subprocess.Popen(
        [*CLI, "command", "hold", "--path", str(app_dir), "--params", params],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        old_pid = next(
            c.pid
            for c in psutil.Process(dev.proc.pid).children(recursive=True)
            if "alien.sdk.runtime" in " ".join(c.cmdline())
        )
        mark = len(dev.lines)
        app_py = app_dir / "api" / "app.py"
        app_py.write_text(app_py.read_text() + "\n# a change: reload\n")
        # The new version is up and the old one was told to stop, with the command still running.
        dev.wait_for(r"^\[api\] .*SIGTERM received", start=mark)
        assert running.poll() is None
        release.touch()
        out, err = running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0, err
    assert json.loads(out) == {"pid": old_pid}
    dev.wait_for(r"^alien dev: reloaded", start=mark)
    after = command(app_dir, "page-stats", "--params", '{"name": "x"}')
    assert after.returncode == 0, after.stderr
