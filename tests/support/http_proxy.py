"""A real HTTP proxy for tests: proxy.py (``proxy`` from PyPI) on a free loopback port.

What an engineer's or a customer's egress proxy does: forwards plain-HTTP requests sent in
absolute form, tunnels ``CONNECT``, and demands Basic credentials. Its access log (one line per
request or tunnel, e.g. ``GET 127.0.0.1:8080/v1/... - 200 OK`` or ``CONNECT 127.0.0.1:8080``) is
how a test sees that traffic went through it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 15.0


@dataclass(frozen=True)
class HttpProxy:
    port: int
    user: str
    password: str
    log_path: Path

    @property
    def url(self) -> str:
        """The proxy's URL with its credentials, as ``HTTP(S)_PROXY`` would carry it."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"

    @property
    def url_without_credentials(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        """The requests and tunnels the proxy handled so far (refusals included). proxy.py
        writes a line when the client's connection closes, so see :meth:`wait_for`."""
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [line for line in text.splitlines() if "access_log" in line]

    def wait_for(self, fragment: str, timeout: float = 10.0, *, count: int = 1) -> list[str]:
        """The access log's lines holding ``fragment``, once there are ``count`` of them (fewer
        on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.access_log() if fragment in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


def proxy_env(http: str, https: str = "") -> dict[str, str]:
    """Every spelling of the proxy variables set: ``http`` for plain HTTP, ``https`` for TLS
    and WebSockets (empty: none), no ``ALL_PROXY`` and no ``NO_PROXY`` exemption (loopback
    included: the tests' manager is on loopback)."""
    values = {"HTTP_PROXY": http, "HTTPS_PROXY": https, "ALL_PROXY": "", "NO_PROXY": ""}
    return values | {name.lower(): value for name, value in values.items()}


@contextmanager
def running_proxy(
    root: Path, *, user: str = "engineer", password: str = "s3cret", idle_timeout: int = 10
) -> Iterator[HttpProxy]:
    """``idle_timeout``: seconds of silence after which the proxy drops a connection (and writes
    its access-log line)."""
    root.mkdir(parents=True, exist_ok=True)
    port_file, log_path = root / "proxy.port", root / "proxy.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "proxy",
            "--hostname", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
            "--basic-auth", f"{user}:{password}", "--num-workers", "1", "--num-acceptors", "1",
            "--log-level", "INFO", "--log-file", str(log_path), "--timeout", str(idle_timeout),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text() if log_path.exists() else "(no log)"
                raise AssertionError(f"proxy.py did not start: {log[-2000:]}")
            time.sleep(0.05)
        yield HttpProxy(int(port_file.read_text()), user, password, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
