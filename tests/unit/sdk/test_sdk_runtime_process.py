"""The function runtime as the real process a platform starts (``python -m alien.sdk.runtime``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from alien.bindings.local.kv import LocalKv
from alien.bindings.local.queue import LocalQueue

APP = textwrap.dedent(
    """
    import asyncio, json, os
    import alien

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        if scope["path"] == "/slow":
            print("slow request started", flush=True)
            await asyncio.sleep(0.5)
        if scope["path"] == "/seen":  # what the app can know of the platform's token
            headers = [name.decode() for name, _ in scope["headers"]]
            body = json.dumps({"env": os.environ.get("ALIEN_HTTP_TOKEN"), "headers": headers})
            body = body.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    @alien.on_queue_message("tasks")
    def handle(message):
        if message.text == "boom":
            raise RuntimeError("handler bug")
        alien.kv("cache").set("seen", message.body)
    """
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bindings = {
        "cache": {"kind": "kv", "platform": "local", "path": str(tmp_path / "kv.db")},
        "tasks": {"kind": "queue", "platform": "local", "path": str(tmp_path / "q.db")},
    }
    return {
        "PATH": os.environ["PATH"],
        # The alien under test, not the one installed in the environment:
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "ALIEN_FUNCTION": "api",
        "ALIEN_ENTRYPOINT": "app:app",
        "ALIEN_TRIGGERS": json.dumps([{"type": "queue", "queue": "tasks"}]),
        "ALIEN_PORT": "0",
        "ALIEN_BINDINGS": json.dumps(bindings),
        "PYTHONUNBUFFERED": "1",
    } | extra


class Runtime:
    """A runtime process with its output collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alien.sdk.runtime"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("alien-runtime: ready function=api"):
                http = line.split("http=")[1].split()[0] if "http=" in line else None
                self.url = http and "http://" + http.removeprefix("tcp:")
                self._ready.set()
        self._ready.set()  # EOF: exited

    def wait_ready(self) -> str:
        assert self._ready.wait(20), "\n".join(self.lines)
        assert self.url, "\n".join(self.lines)
        return self.url

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    return code


@pytest.fixture
def runtime(code_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(code_dir, _env(tmp_path))
    yield rt
    if rt.proc.poll() is None:
        rt.proc.kill()
        rt.proc.wait()


def _poll(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_serves_http_and_runs_triggers_and_survives_a_failing_handler(
    runtime: Runtime, tmp_path: Path
) -> None:
    url = runtime.wait_ready()
    assert httpx.get(f"{url}/hello", timeout=5).text == "/hello"
    queue, kv = LocalQueue(tmp_path / "q.db"), LocalKv(tmp_path / "kv.db")
    queue.send("boom")  # the handler raises: logged, the process carries on
    queue.send("payload")
    assert _poll(lambda: kv.get("seen")) == b"payload"
    assert "handler bug" in runtime.output  # the traceback is in the log
    assert httpx.get(f"{url}/still-up", timeout=5).status_code == 200


def test_on_the_platform_s_endpoint_only_callers_with_its_token_are_answered(
    code_dir: Path, tmp_path: Path
) -> None:
    """On the loopback port a too-deep area falls back to, any local process can connect: the
    token is what keeps it away from the app, and the app itself never gets to hold it."""
    token = "http-" + "k" * 40
    env = _env(tmp_path, ALIEN_HTTP_ADDRESS="tcp:127.0.0.1:0", ALIEN_HTTP_TOKEN=token)
    rt = Runtime(code_dir, env)
    try:
        url = rt.wait_ready()
        refused = [
            httpx.get(f"{url}/hello", timeout=5),
            httpx.get(f"{url}/hello", headers={"alien-http-token": "x" * 45}, timeout=5),
        ]
        assert {r.status_code for r in refused} == {401}
        assert refused[0].json()["error"]["code"] == "UNAUTHENTICATED"
        seen = httpx.get(f"{url}/seen", headers={"alien-http-token": token}, timeout=5).json()
        assert seen["env"] is None and "alien-http-token" not in seen["headers"]
        assert all(token not in line for line in rt.lines)
    finally:
        rt.proc.kill()
        rt.proc.wait()


def test_sigterm_finishes_the_request_in_flight_then_exits_zero(runtime: Runtime) -> None:
    url = runtime.wait_ready()
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: result.update(r=httpx.get(f"{url}/slow", timeout=10)))
    request.start()
    _poll(lambda: True if "slow request started" in runtime.output else None, 5)
    runtime.proc.send_signal(signal.SIGTERM)
    request.join(10)
    assert result["r"].status_code == 200 and result["r"].text == "/slow"
    assert runtime.proc.wait(10) == 0
    assert "function api stopped" in runtime.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ALIEN_ENTRYPOINT": "missing:app"}, "entrypoint module 'missing' not found"),
        (
            {
                "ALIEN_TRIGGERS": json.dumps(
                    [{"type": "cron", "name": "n", "schedule": "* * * * *"}]
                )
            },
            "@alien.on_cron('n')",
        ),
        ({"ALIEN_FUNCTION": ""}, "ALIEN_FUNCTION is not set"),
    ],
)
def test_bad_start_up_exits_1_with_one_clear_line(
    code_dir: Path, tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alien.sdk.runtime"],
        cwd=code_dir,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "alien-runtime: error: " in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr


def test_the_runtime_stops_when_the_platform_process_dies(code_dir: Path, tmp_path: Path) -> None:
    launcher = textwrap.dedent(
        """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-m", "alien.sdk.runtime"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in child.stdout:
            if line.startswith("alien-runtime: ready"):
                break
        print(child.pid, flush=True)  # then exit without stopping it, as a killed platform would
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", launcher],
        cwd=code_dir,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    orphan = psutil.Process(int(out.stdout))  # the launcher exited at once: it is orphaned
    try:
        orphan.wait(timeout=15)  # its watchdog notices the new parent and stops it
    finally:
        if orphan.is_running():
            orphan.kill()
