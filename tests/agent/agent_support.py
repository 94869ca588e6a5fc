"""Helpers of the agent suite: real ``alien-deploy`` processes, test apps, a pinned-port manager.

* ``AgentProcess`` runs ``python -m alien.cli.deploy up|run`` and reads its stable stdout lines
  (``alien-deploy: deployment …`` / ``alien-deploy: running <release> api=<url>``) from a queue,
  so tests wait for what they expect, not for a fixed time. stderr goes to ``<state>.log``.
* ``write_app`` writes a tiny stack: a public ASGI function answering its version, a FROZEN
  storage, queue and vault, so tests can check that updates never touch frozen resources.
* ``PinnedManager`` is a ``ManagerProcess`` that restarts on the port it got the first time
  (agents keep the manager URL they were onboarded with).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from alien.client import ClientConfig, ManagerClient
from support.manager import ManagerProcess

LINE = "alien-deploy: "
START_TIMEOUT = 30.0


class AgentProcess:
    def __init__(
        self,
        state_dir: Path,
        manager_url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        transport: str = "auto",
        reconnect_max: float = 1.0,
        command_tracebacks: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.manager_url = manager_url
        self.token = token
        self.name = name
        self.transport = transport
        self.reconnect_max = reconnect_max
        self.command_tracebacks = command_tracebacks
        self.log_path = state_dir.with_name(state_dir.name + ".log")
        self.deployment_id: str | None = None
        self.urls: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def area(self) -> Path:
        return self.state_dir / "area"

    def command(self, verb: str) -> list[str]:
        cmd = [sys.executable, "-m", "alien.cli.deploy", verb, "--state-dir", str(self.state_dir)]
        if verb == "up":
            cmd += ["--manager", self.manager_url]
            if self.token:
                cmd += ["--token", self.token]
            if self.name:
                cmd += ["--name", self.name]
        cmd += ["--transport", self.transport, "--reconnect-max", str(self.reconnect_max)]
        if self.command_tracebacks:
            cmd.append("--command-tracebacks")
        return cmd

    def start(self, verb: str = "up") -> AgentProcess:
        assert self._proc is None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("a") as log:
            self._proc = subprocess.Popen(
                self.command(verb), stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        self._lines = queue.Queue()
        threading.Thread(target=_drain, args=(self._proc, self._lines), daemon=True).start()
        self.deployment_id = self.expect("deployment").split()[0]
        return self

    def expect(self, what: str, timeout: float = START_TIMEOUT) -> str:
        """The rest of the next stdout line starting with ``alien-deploy: <what> ``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"agent printed no {what!r} line:\n{self.log()}") from None
            if line is None:
                raise AssertionError(f"agent exited while waiting for {what!r}:\n{self.log()}")
            prefix = f"{LINE}{what} "
            if line.startswith(prefix):
                return line.removeprefix(prefix)

    def wait_running(self, release: str, timeout: float = START_TIMEOUT) -> dict[str, str]:
        """Wait until the agent says it runs ``release``; return its function URLs."""
        deadline = time.monotonic() + timeout
        while True:
            words = self.expect("running", max(0.01, deadline - time.monotonic())).split()
            if words[0] == release:
                self.urls = dict(word.split("=", 1) for word in words[1:])
                return self.urls

    def get(self, path: str = "/", function: str = "api") -> httpx.Response:
        return httpx.get(self.urls[function] + path, timeout=10)

    def put(self, path: str, body: bytes, function: str = "api") -> httpx.Response:
        return httpx.put(self.urls[function] + path, content=body, timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM; returns the exit code."""
        return self._end(signal.SIGTERM, timeout)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit on its own; returns the exit code."""
        assert self._proc is not None
        code = self._proc.wait(timeout)
        self._end(signal.SIGTERM, timeout)  # only collects it: it has exited
        return code

    def terminate(self) -> None:
        """SIGTERM without waiting (stop several agents at once, then ``stop`` each)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> int:
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: signal.Signals, timeout: float) -> int:
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except FileNotFoundError:
            return ""


def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


APP = """\
import alien

VERSION = {version!r}
{broken}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    status, body = 200, VERSION.encode()
    if scope["method"] == "PUT" and scope["path"].startswith("/data/"):
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        alien.storage("data").put(scope["path"].removeprefix("/data/"), b"".join(chunks))
        body = b"stored"
    await send({{"type": "http.response.start", "status": status, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""

STACK = """\
import alien

data = alien.Storage("data")
jobs = alien.Queue("jobs", visibility_timeout={timeout})
secrets = alien.Vault("secrets")
api = (
    alien.Function("api").code(src="api", entrypoint="app:app")
    .link(data).link(jobs).link(secrets).ingress("public")
)
stack = (
    alien.Stack("agent-test")
    .add(api, "live").add(data, "frozen").add(jobs, "frozen").add(secrets, "frozen")
)
"""


def write_app(
    root: Path, version: str, *, broken: bool = False, slow_import: float = 0.0, timeout: int = 30
) -> Path:
    """Write (or overwrite) the test app in ``root``; return ``root``."""
    (root / "api").mkdir(parents=True, exist_ok=True)
    lines = []
    if slow_import:
        lines.append(f"import time; time.sleep({slow_import})")
    if broken:
        lines.append(f"raise RuntimeError('boom: {version} is broken')")
    (root / "api" / "app.py").write_text(APP.format(version=version, broken="\n".join(lines)))
    (root / "alien_stack.py").write_text(STACK.format(timeout=timeout))
    return root


def frozen_snapshot(area: Path) -> dict[str, object]:
    """Bytes of every frozen resource's files and their records in ``state.json``."""
    files: dict[str, bytes] = {}
    for sub in ("resources/storage/data", "resources/queue", "resources/vault", "keys"):
        base = area / sub
        for path in sorted(base.rglob("*")):
            if path.is_file():
                files[str(path.relative_to(area))] = path.read_bytes()
    state = json.loads((area / "state.json").read_text())
    records = {rid: state["resources"][rid] for rid in ("data", "jobs", "secrets")}
    return {"files": files, "records": records}


def unique(prefix: str) -> str:
    """A name no other test uses (valid as a group or deployment name)."""
    return f"{prefix}-{secrets.token_hex(3)}"


def admin_client(manager: ManagerProcess) -> ManagerClient:
    return ManagerClient(ClientConfig(base_url=manager.url, token=manager.admin_key))


class PinnedManager(ManagerProcess):
    """A manager that comes back on the same port (and data dir) after a restart or a kill."""

    def start(self) -> PinnedManager:
        super().start()
        self.port = int(self.url.rsplit(":", 1)[1])  # every later start comes back on it
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, connections drop on the floor."""
        proc, self._proc = self._proc, None
        assert proc is not None
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
