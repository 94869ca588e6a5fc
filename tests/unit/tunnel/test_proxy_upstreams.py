"""The agent's upstream connections through the environment's HTTP proxy (``proxy_connect``):
which proxy applies, what is sent to it — the AWS pool's absolute form byte for byte, the egress's
tunnel to the checked address — and how a refusal is told, never with the proxy's credentials.

The proxy here is a few lines of asyncio recording what it is asked: ``CONNECT`` is agreed to
(or refused) and relayed to one backend; a plain request is answered by the proxy itself."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alien.agent.debug import ConnectUpstream
from alien.debug.tls import SessionCertificate
from alien.platforms.aws.http1_client import Pool
from alien.protocol.http_exchange import RequestHead
from alien.tunnel.errors import UpstreamUnreachable
from alien.tunnel.forward import ForwardingUpstream, HostAllowlist, Resolver
from alien.tunnel.proxy_connect import Proxy, ProxyError, http_proxy
from tunnel.tunnel_support import generate

PASSWORD = "s3cret-pw"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class FakeProxy:
    """Records each request head it gets; ``refuse``: the status line it answers instead."""

    def __init__(self, backend: tuple[str, int] | None = None) -> None:
        self.backend = backend
        self.heads: list[bytes] = []
        self.refuse: str | None = None
        self.port = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        if self.refuse is not None:
            writer.write(f"HTTP/1.1 {self.refuse}\r\ncontent-length: 0\r\n\r\n".encode())
        elif head.startswith(b"CONNECT ") and self.backend is not None:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            far_reader, far_writer = await asyncio.open_connection(*self.backend)
            await asyncio.gather(_relay(reader, far_writer), _relay(far_reader, writer))
        else:
            writer.write(OK)
        await writer.drain()
        writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def tls_backend(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """An https server whose certificate names only ``svc.vendor.example``; its CA file."""
    cert = SessionCertificate.generate(ip_addresses=(), dns_names=("svc.vendor.example",))
    (tmp_path / "cert.pem").write_bytes(cert.cert_pem)
    (tmp_path / "key.pem").write_bytes(cert.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], tmp_path / "cert.pem"
    server.close()


async def _proxy(monkeypatch: pytest.MonkeyPatch, fake: FakeProxy) -> asyncio.Server:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    fake.url = f"http://agent:{PASSWORD}@127.0.0.1:{fake.port}"
    _environment(monkeypatch, HTTP_PROXY=fake.url, HTTPS_PROXY=fake.url)
    return server


def _environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _resolver(address: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return [address]

    return resolve


# --- which proxy, and how it is named ----------------------------------------------------------


def test_http_proxy_reads_the_variables_as_httpx_does(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, HTTPS_PROXY="http://tls:1", HTTP_PROXY="http://plain:2")
    assert http_proxy(True, "api.example") == Proxy("tls", 1)
    assert http_proxy(False, "api.example") == Proxy("plain", 2)
    _environment(monkeypatch, ALL_PROXY="any:3")  # no scheme: http:// is meant
    assert http_proxy(True, "api.example") == http_proxy(False, "x") == Proxy("any", 3)
    _environment(monkeypatch, HTTPS_PROXY="http://tls:1", NO_PROXY=".internal,10.0.0.5:8443")
    assert http_proxy(True, "s3.internal") is None
    assert http_proxy(True, "10.0.0.5", 8443) is None  # an entry naming a port
    assert http_proxy(True, "10.0.0.5", 443) == Proxy("tls", 1)
    assert http_proxy(True, "10.0.0.5") == Proxy("tls", 1)


@pytest.mark.parametrize(
    ("host", "port", "secure"),
    [("10.0.0.5", 8443, True), ("10.0.0.5", 443, True), ("a.internal", 80, False)],
)
def test_no_proxy_with_ports_matches_the_standard_library(
    host: str, port: int, secure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = ".internal,10.0.0.5:8443"
    _environment(monkeypatch, HTTPS_PROXY="http://p:1", HTTP_PROXY="http://p:1", NO_PROXY=entries)
    netloc = host if port == (443 if secure else 80) else f"{host}:{port}"
    bypassed = bool(urllib.request.proxy_bypass_environment(netloc, {"no": entries}))
    assert (http_proxy(secure, host, port) is None) is bypassed


def test_a_proxy_is_named_without_its_credentials() -> None:
    proxy = Proxy.parse(f"http://agent:{PASSWORD}@proxy.corp:3128")
    assert proxy.authorization is not None and proxy.authorization.startswith("Basic ")
    assert str(proxy) == "http://proxy.corp:3128"
    assert PASSWORD not in repr(proxy) and proxy.authorization not in repr(proxy)
    assert proxy.headers == [("proxy-authorization", proxy.authorization)]
    with pytest.raises(ProxyError, match="only http://"):
        Proxy.parse(f"https://agent:{PASSWORD}@proxy.corp:3128")
    with pytest.raises(ProxyError) as info:
        Proxy.parse(f"http://agent:{PASSWORD}@proxy.corp:port")
    assert PASSWORD not in str(info.value)


async def test_a_refused_tunnel_names_the_proxy_not_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProxy()
    fake.refuse = "407 Proxy Authentication Required"
    async with await _proxy(monkeypatch, fake):
        with pytest.raises(ProxyError) as info:
            await Proxy.parse(fake.url).connect("10.1.2.3", 443)
    message = str(info.value)
    assert f"http://127.0.0.1:{fake.port}" in message and "407" in message
    assert PASSWORD not in message
    assert fake.heads[0].startswith(b"CONNECT 10.1.2.3:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic " in fake.heads[0]


# --- the AWS pool ------------------------------------------------------------------------------


async def test_the_aws_pool_sends_plain_http_in_absolute_form_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProxy()
    target = "/bucket/a%2Fb/./c?x-id=GetObject&y=%7E"
    async with await _proxy(monkeypatch, fake):
        pool = Pool()
        response = await pool.request(
            "http://moto.internal:5000", "GET", target, [("host", "moto.internal:5000")], None
        )
        assert response.status == 200
        assert b"".join([chunk async for chunk in response.body]) == b"ok"
        await response.release()
        await pool.aclose()
    line, *headers = fake.heads[0].decode().split("\r\n")
    assert line == f"GET http://moto.internal:5000{target} HTTP/1.1"
    assert "host: moto.internal:5000" in headers
    assert any(h.startswith("proxy-authorization: Basic ") for h in headers)


async def test_the_aws_pool_tells_a_407_as_the_proxys_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProxy()
    fake.refuse = "407 Proxy Authentication Required"
    async with await _proxy(monkeypatch, fake):
        pool = Pool()
        with pytest.raises(ProxyError) as info:
            await pool.request(
                "http://moto.internal", "GET", "/", [("host", "moto.internal")], None
            )
        await pool.aclose()
    assert f"http://127.0.0.1:{fake.port}" in str(info.value) and PASSWORD not in str(info.value)


async def test_the_aws_pool_tunnels_https_and_checks_the_destinations_name(
    monkeypatch: pytest.MonkeyPatch, tls_backend: tuple[int, Path]
) -> None:
    port, ca_file = tls_backend
    fake = FakeProxy(backend=("127.0.0.1", port))
    async with await _proxy(monkeypatch, fake):
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        pool = Pool()
        origin = f"https://svc.vendor.example:{port}"
        response = await pool.request(origin, "GET", "/", [("host", origin[8:])], None)
        assert response.status == 200
        await response.release()
        await pool.aclose()
    assert fake.heads[0].startswith(f"CONNECT svc.vendor.example:{port} ".encode())


# --- the egress: through the proxy to the address it checked ------------------------------------


async def test_https_egress_tunnels_to_the_checked_address_and_verifies_the_name(
    monkeypatch: pytest.MonkeyPatch, tls_backend: tuple[int, Path]
) -> None:
    port, ca_file = tls_backend
    fake = FakeProxy(backend=("127.0.0.1", port))
    async with await _proxy(monkeypatch, fake):
        upstream = ForwardingUpstream(
            [f"svc.vendor.example:{port}"],
            verify=ssl.create_default_context(cafile=ca_file),
            resolve=_resolver("10.9.8.7"),
        )
        request = RequestHead.create("GET", f"https://svc.vendor.example:{port}/x", [])
        response = await upstream.send(request, generate(0))
        assert response.head.status == 200
        await response.aclose()
        await upstream.aclose()
    assert fake.heads[0].startswith(f"CONNECT 10.9.8.7:{port} ".encode())


async def test_plain_egress_goes_in_absolute_form_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProxy()
    async with await _proxy(monkeypatch, fake):
        upstream = ForwardingUpstream(
            ["svc.vendor.example:8080"], scheme="http", resolve=_resolver("10.9.8.7")
        )
        request = RequestHead.create("GET", "/a%2Fb?q=1", [("host", "svc.vendor.example:8080")])
        response = await upstream.send(request, generate(0))
        assert response.head.status == 200
        await response.aclose()
        fake.refuse = "407 Proxy Authentication Required"
        with pytest.raises(UpstreamUnreachable) as info:
            await upstream.send(request, generate(0))
        await upstream.aclose()
    line, *headers = fake.heads[0].decode().split("\r\n")
    assert line == "GET http://10.9.8.7:8080/a%2Fb?q=1 HTTP/1.1"
    assert "host: svc.vendor.example:8080" in headers
    assert info.value.status == 502 and "407" in info.value.message
    assert f"http://127.0.0.1:{fake.port}" in info.value.message
    assert PASSWORD not in info.value.message


async def test_no_proxy_sends_the_egress_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()

    target = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    fake = FakeProxy()
    async with target, await _proxy(monkeypatch, fake):
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        upstream = ForwardingUpstream([f"127.0.0.1:{port}"], scheme="http")
        response = await upstream.send(
            RequestHead.create("GET", f"http://127.0.0.1:{port}/", []), generate(0)
        )
        assert response.head.status == 200
        await response.aclose()
        await upstream.aclose()
    assert fake.heads == []


async def test_connect_egress_asks_the_proxy_for_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeProxy()
    fake.refuse = "403 Forbidden"
    async with await _proxy(monkeypatch, fake):
        upstream = ConnectUpstream(HostAllowlist(["*.vendor.example"]), _resolver("10.9.8.7"))
        with pytest.raises(UpstreamUnreachable) as info:
            await upstream.send(
                RequestHead.create("CONNECT", "db.vendor.example:443", []), generate(0)
            )
    assert fake.heads[0].startswith(b"CONNECT 10.9.8.7:443 ")
    assert "403 Forbidden" in info.value.message and PASSWORD not in info.value.message
    assert f"http://127.0.0.1:{fake.port}" in info.value.message
