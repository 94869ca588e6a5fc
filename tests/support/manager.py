"""``ManagerProcess``: a real ``alien serve`` subprocess on a free port, for tests.

It gets its own data dir and an admin key through ``ALIEN_ADMIN_KEY`` (so the test knows it),
optionally a PostgreSQL URL. ``start()`` returns once the process printed its
``alien manager listening on …`` line; stdout is drained by a thread so the child never blocks on
a full pipe, stderr goes to ``<root>/manager.log`` (shown in assertion messages on failure).
``restart()`` stops and starts it again on the same data dir and database.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from alien.manager import tokens
from alien.manager.server import ADMIN_KEY_PREFIX, LISTENING_PREFIX
from support.api import ApiClient

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class ManagerProcess:
    port = 0
    """The port ``start`` listens on; 0 picks a free one every time."""

    def __init__(
        self,
        root: Path,
        *,
        database_url: str | None = None,
        install_admin_key: bool = True,
        extra_env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        standby: bool = False,
    ) -> None:
        """``install_admin_key=False``: pass no ``ALIEN_ADMIN_KEY``; a fresh manager then prints
        a generated one, which lands in ``admin_key`` (and ``printed_admin_key``). ``data_dir``:
        another manager's (default ``<root>/data``); ``standby``: ``alien serve --standby``."""
        self.root = root
        self.data_dir = data_dir or root / "data"
        self.standby = standby
        self.log_path = root / "manager.log"
        self.database_url = database_url
        self.install_admin_key = install_admin_key
        self.admin_key = tokens.issue(tokens.TokenKind.API_KEY).value if install_admin_key else ""
        self.printed_admin_key: str | None = None
        self.extra_env = dict(extra_env or {})
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
        if self.install_admin_key:
            env["ALIEN_ADMIN_KEY"] = self.admin_key
        if self.database_url:
            env["ALIEN_DATABASE_URL"] = self.database_url
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self) -> ManagerProcess:
        self.launch()
        return self.wait_started()

    def launch(self) -> None:
        """Start the process without waiting for it to serve (``start`` waits)."""
        assert self._proc is None, "already running"
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        cmd = [
            sys.executable,
            "-m",
            "alien.cli.main",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            os.environ.get("ALIEN_TEST_MANAGER_LOG_LEVEL", "warning"),
            *(["--standby"] if self.standby else []),
        ]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=self._env()
        )
        log.close()
        self._lines = queue.Queue()
        threading.Thread(target=self._drain, args=(self._proc, self._lines), daemon=True).start()

    @staticmethod
    def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def wait_started(self) -> ManagerProcess:
        """After ``launch``: wait until it serves (as ``start`` does)."""
        self.url = self._wait_for_url()
        return self

    def _wait_for_url(self) -> str:
        self.printed_admin_key = None
        while True:
            try:
                line = self._lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"manager did not start in time:\n{self.log()}") from None
            if line is None:
                self.stop()
                raise AssertionError(f"manager exited during start:\n{self.log()}")
            if line.startswith(ADMIN_KEY_PREFIX):
                self.printed_admin_key = line.removeprefix(ADMIN_KEY_PREFIX).strip()
                self.admin_key = self.printed_admin_key
            if line.startswith(LISTENING_PREFIX):
                return line.removeprefix(LISTENING_PREFIX).strip()

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind (a crash, an OOM kill)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def restart(self) -> ManagerProcess:
        self.stop()
        return self.start()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not running"
        return self._proc.pid

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end on its own; its exit code."""
        assert self._proc is not None, "not running"
        return self._proc.wait(timeout=timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def client(self, token: str | None = None) -> ApiClient:
        """An API client; with no argument it uses the admin key."""
        return ApiClient(self.url, token if token is not None else self.admin_key)

    def log(self, tail: int | None = 4000) -> str:
        """The server's stderr (the last ``tail`` characters; ``None``: all of it)."""
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]
