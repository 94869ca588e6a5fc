"""``alien dev`` end to end: the pages example as a real child process, driven over real HTTP.

Covers what a developer relies on: storage round-trips, the vault secret (set while running),
kv counters, the queue trigger, the storage trigger, a cron tick (every second in this test's
copy of the stack), reload on change (and surviving a broken change), and Ctrl-C leaving no
process behind.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from alien.cli.dev import _busy_port_is_fatal
from alien.errors import PlatformError
from alien.platforms.local.dev import DevEvent
from alien.platforms.local.ingress import PortInUse

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pages"
URL_LINE = re.compile(r"^alien dev: api → (http://\S+)$")
SECRET = "correct horse battery staple"


class Dev:
    """A running ``alien dev`` with its output collected line by line."""

    def __init__(self, app_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alien.cli.main", "dev", "--path", str(app_dir)],
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
        """The first output line from index ``start`` on matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                self._changed.wait(remaining)


def poll(check: Callable[[], Any], timeout: float = 20) -> Any:
    """Call ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
    return value


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "pages"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns(".alien", "__pycache__"))
    stack = app / "alien_stack.py"
    text = stack.read_text()
    assert '"0 3 * * *"' in text
    stack.write_text(text.replace('"0 3 * * *"', '"* * * * * *"'))  # cron every second
    return app


@pytest.fixture
def dev(app_dir: Path) -> Iterator[Dev]:
    running = Dev(app_dir)
    yield running
    if running.proc.poll() is None:  # the test failed before its own Ctrl-C
        for child in psutil.Process(running.proc.pid).children(recursive=True):
            child.kill()
        running.proc.kill()
        running.proc.wait()


def set_secret(app_dir: Path, value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alien.cli.main",
            "dev",
            "secret",
            "set",
            "secrets",
            "signing-key",
            "--path",
            str(app_dir),
        ],
        input=value + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alien_dev_runs_the_pages_example(app_dir: Path, dev: Dev) -> None:
    url = dev.wait_for(URL_LINE.pattern)[1]
    client = httpx.Client(base_url=url, timeout=10)
    assert (app_dir / ".alien" / "dev" / ".gitignore").read_text().endswith("\n*\n")

    # storage round-trip
    put = client.put("/pages/home", content="hello big world")
    assert put.status_code == 200 and put.json()["size"] == 15
    assert client.get("/pages/home").text == "hello big world"
    assert client.get("/pages/nope").json()["error"]["code"] == "NOT_FOUND"

    # kv counts views; the queue trigger counts words; the storage trigger saw the put.
    # The two triggers run independently, so wait for both before comparing.
    client.get("/pages/home")
    stats = poll(
        lambda: (s := client.get("/pages/home/stats").json())["words"] and s["last_event"] and s
    )
    assert stats == {"views": 2, "words": 3, "last_event": "put"}

    # the vault secret, set while alien dev runs (value on stdin, never in argv)
    assert client.get("/pages/home/signature").status_code == 503
    done = set_secret(app_dir, SECRET)
    assert done.returncode == 0 and SECRET not in done.stdout
    expected = hmac.new(SECRET.encode(), b"hello big world", hashlib.sha256).hexdigest()
    assert client.get("/pages/home/signature").json()["hmac_sha256"] == expected

    # the cron trigger ticks every second (a tick from before the put may have counted 0 pages);
    # a tick writes its count, then its time, and /stats reads the time first: poll for both
    site = poll(lambda: (s := client.get("/stats").json())["pages"] == 1 and s["nightly_last_run"])
    assert site

    # a delete fires the storage trigger again
    assert client.delete("/pages/home").json() == {"deleted": True}
    poll(lambda: client.get("/pages/home/stats").json()["last_event"] == "delete")

    # reload: a change is picked up behind the same URL
    app_py = app_dir / "api" / "app.py"
    source = app_py.read_text()
    mark = len(dev.lines)
    app_py.write_text(
        source + '\n\n@app.get("/version")\ndef version() -> dict:\n    return {"v": 2}\n'
    )
    dev.wait_for(r"^alien dev: reloaded", start=mark)
    assert dev.wait_for(URL_LINE.pattern, start=mark)[1] == url
    assert client.get("/version").json() == {"v": 2}

    # a broken change is reported; the previous version keeps serving
    mark = len(dev.lines)
    app_py.write_text(source + "\ndef broken(:\n")
    dev.wait_for(r"^alien dev: \S+ failed: .*function api exited", start=mark)
    dev.wait_for(r"^    .*SyntaxError", start=mark)  # the failure's details, indented
    shown = "\n".join(dev.lines[mark:])  # named as the app's file, not its staged copy's
    assert f'File "{app_py.resolve()}", line' in shown and "/releases/" not in shown, shown
    assert client.get("/version").json() == {"v": 2}

    # Ctrl-C stops everything: no child process is left
    children = psutil.Process(dev.proc.pid).children(recursive=True)
    assert any("alien.sdk.runtime" in " ".join(c.cmdline()) for c in children)
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(30) == 0
    dev.wait_for(r"^alien dev: stopped")
    assert [c.pid for c in children if c.is_running() and c.status() != "zombie"] == []
    with pytest.raises(httpx.ConnectError):
        client.get("/pages/home")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_port_in_use_at_the_first_start_ends_the_run(app_dir: Path, as_json: bool) -> None:
    """No edit can free a port another process holds: instead of waiting for changes forever,
    ``alien dev --port N`` exits 1 with one line naming the flag, and leaves nothing running."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        command = [sys.executable, "-m", "alien.cli.main", "dev", "--path", str(app_dir)]
        command += ["--port", str(port), *(["--json"] if as_json else [])]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"error: port 127.0.0.1:{port} is already in use (--port)\n"
    assert result.stdout == ""
    assert not any(str(app_dir) in " ".join(p.info["cmdline"] or ()) for p in _processes())


def _processes() -> list[psutil.Process]:
    return list(psutil.process_iter(["cmdline"]))


def test_only_the_first_start_gives_up_on_a_port_in_use() -> None:
    """A reload failing on a port keeps the usual course: reported, the old version running."""
    seen: list[DevEvent] = []
    report = _busy_port_is_fatal(seen.append)
    ready = DevEvent("ready", release="dev-1", urls={})
    report(ready)
    failed = DevEvent("failed", release="dev-2", message="port 127.0.0.1:1 is already in use")
    try:
        raise PortInUse("127.0.0.1", 1)
    except PortInUse:
        report(failed)
    assert seen == [ready, failed]

    first = _busy_port_is_fatal(seen.append)
    with pytest.raises(PlatformError) as ended:
        try:
            raise PortInUse("127.0.0.1", 1)
        except PortInUse:
            first(failed)
    assert (ended.value.message, ended.value.field) == (
        "port 127.0.0.1:1 is already in use",
        "--port",
    )
