"""Services "inside the customer's environment" for pull-model tests: plain HTTP and HTTPS on
loopback, each in a thread of the test process.

* ``GET /hello`` answers ``hello from inside``; ``POST /echo`` answers the SHA-256 of the body
  and its length (so a streamed upload can be checked without holding it twice);
* ``GET /slow`` sends its headers and a first line, then holds the connection open until the
  client goes away, and records when that happened (``disconnected``) — how a test sees the
  agent's leg close;
* ``GET /version`` answers as a Kubernetes API server does (``kubectl version`` asks it);
* ``GET /late`` (or ``POST``) answers nothing to its first caller (held until it goes away,
  ``started`` set meanwhile), then ``answered on call N`` to every later one — a request in
  flight when its tunnel drops, and its retry.
"""

from __future__ import annotations

import hashlib
import json
import select
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from alien.debug.tls import SessionCertificate, server_ssl_context

HELLO = b"hello from inside"
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-inside", "platform": "x"}


@dataclass
class SlowLog:
    started: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnected_at: float = 0.0
    peer: str = ""
    calls: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("authorization")))
        if self.path == "/hello":
            self._answer(200, HELLO)
        elif self.path.partition("?")[0] == "/version":
            self._answer(200, json.dumps(SERVER_VERSION).encode(), "application/json")
        elif self.path == "/slow":
            self._slow()
        elif self.path == "/late":
            self._late()
        else:
            self._answer(404, b"no such page")

    def do_POST(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("authorization")))
        if self.path == "/late":
            for _ in self._body():
                pass
            self._late()
            return
        digest = hashlib.sha256()
        size = 0
        for chunk in self._body():
            digest.update(chunk)
            size += len(chunk)
        self._answer(200, f"{digest.hexdigest()} {size}".encode())

    def _body(self) -> Iterator[bytes]:
        """The request body, with a content length or chunked."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while size := int(self.rfile.readline().split(b";")[0], 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass  # trailers
            return
        remaining = int(self.headers.get("content-length", "0"))
        while remaining and (chunk := self.rfile.read(min(remaining, 1 << 20))):
            remaining -= len(chunk)
            yield chunk

    def _slow(self) -> None:
        log = self.server.slow
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()  # no length: the body ends when the connection does
        self.wfile.write(b"started\n")
        self.wfile.flush()
        self._hold(log)

    def _late(self) -> None:
        log = self.server.slow
        log.calls += 1
        if log.calls > 1:
            self._answer(200, f"answered on call {log.calls}".encode())
        else:
            self._hold(log)

    def _hold(self, log: SlowLog) -> None:
        """Until the client goes away; then ``log`` says when."""
        log.peer = f"{self.client_address[0]}:{self.client_address[1]}"
        log.started.set()
        sock = self.connection
        while True:  # readable with no data = the client closed its side
            readable, _, _ = select.select([sock], [], [], 30)
            if not readable:
                continue
            try:
                data = sock.recv(1, 0)
            except (ConnectionError, ssl.SSLError, OSError):
                data = b""
            if not data:
                break
        log.disconnected_at = time.monotonic()
        log.disconnected.set()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.slow = SlowLog()
        self.seen: list[tuple[str, str, str | None]] = []


@dataclass
class Target:
    """One running service; ``authority`` is ``127.0.0.1:PORT``."""

    server: _Server
    scheme: str
    ca_file: Path | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.authority}{path}"

    def reset_slow(self) -> SlowLog:
        self.server.slow = SlowLog()
        return self.server.slow

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Targets:
    """The suite's services: two on the agent's allowlist, one reachable but not allowed."""

    http: Target
    https: Target
    outside: Target


def start_target(tls_dir: Path | None = None) -> Target:
    """An HTTP service; with ``tls_dir`` an HTTPS one (its CA file is written there)."""
    server = _Server()
    ca_file = None
    if tls_dir is not None:
        cert = SessionCertificate.generate()
        ca_file, key_file = tls_dir / "target-cert.pem", tls_dir / "target-key.pem"
        ca_file.write_bytes(cert.cert_pem)
        key_file.write_bytes(cert.key_pem)
        key_file.chmod(0o600)
        context = server_ssl_context(ca_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Target(server, "https" if tls_dir else "http", ca_file)
