"""The sync client's HTTP (``alien.commands.sync_http``) against a real HTTP/1.1 server: kept-alive
connections are reused, one the server closed while idle is never written to, threads share the
client safely, a failure is a ``TransportError`` (a ``ManagerUnreachable`` for the caller), and
a proxy in the environment is noticed."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from alien.client.errors import ManagerUnreachable
from alien.commands import CommandsClient
from alien.commands.sync_http import SyncHttp, TransportError, proxied


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: list[tuple[str, int]] = []  # one entry per accepted connection

    def setup(self) -> None:
        super().setup()
        # Counted per handler (one per connection): ids of closed sockets get reused.
        type(self).connections.append(self.client_address)

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def _answer(self, body: bytes | None) -> None:
        parts = urlsplit(self.path)
        doc = {
            "path": parts.path,
            "query": parse_qs(parts.query),
            "auth": self.headers.get("Authorization"),
            "body": json.loads(body) if body else None,
        }
        out = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if parts.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Echo.connections = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_requests_are_sent_as_asked_and_the_connection_is_kept(server: str) -> None:
    http = SyncHttp(server + "/base", {"Authorization": "Bearer t"}, timeout=5)
    try:
        first = http.request("GET", "/v1/x", params={"state": ["a", "b"], "limit": 5}).json()
        assert first["path"] == "/base/v1/x"
        assert first["query"] == {"state": ["a", "b"], "limit": ["5"]}
        assert first["auth"] == "Bearer t"
        second = http.request("POST", "/v1/y", json_body={"k": [1, 2]}, headers={"X": "1"})
        assert second.status_code == 200 and second.json()["body"] == {"k": [1, 2]}
        absolute = http.request("GET", f"{server}/signed?sig=abc").json()
        assert absolute["path"] == "/signed" and absolute["query"] == {"sig": ["abc"]}
    finally:
        http.close()
    assert len(_Echo.connections) == 1  # one kept-alive connection served all three


def test_a_connection_the_server_closed_is_not_reused(server: str) -> None:
    http = SyncHttp(server, {}, timeout=5)
    try:
        assert http.request("GET", "/close").status_code == 200  # the server closes after it
        for _ in range(3):
            assert http.request("GET", "/again").status_code == 200
    finally:
        http.close()
    assert len(_Echo.connections) == 2


def test_threads_share_one_client(server: str) -> None:
    http = SyncHttp(server, {}, timeout=5)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                reply = http.request("POST", "/t", json_body={"n": n, "i": i})
                assert reply.json()["body"] == {"n": n, "i": i}
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    http.close()
    assert failures == []


def test_an_unreachable_manager_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = SyncHttp(f"http://127.0.0.1:{port}", {}, timeout=2)
    with pytest.raises(TransportError):
        http.request("GET", "/v1/health")
    client = CommandsClient("acme/prod", token="ax_key_x_y", manager=f"http://127.0.0.1:{port}")
    with pytest.raises(ManagerUnreachable) as refused:
        client.get("cmd_x")
    assert f"127.0.0.1:{port}" in refused.value.message


def test_a_proxy_in_the_environment_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not proxied("http://manager.example:8080")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert proxied("http://manager.example:8080")
    assert not proxied("https://manager.example")  # only http goes through that proxy
    monkeypatch.setenv("NO_PROXY", "manager.example")
    assert not proxied("http://manager.example:8080")
