"""The agent's Kubernetes API upstream: what it accepts and refuses, and how an upgrade request
is written; the happy paths (the service account token sent to the API server, its CA checked,
``kubectl exec`` both ways) are end to end in tests/debug_pull/test_pull_kubectl.py."""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from alien.debug.tls import SessionCertificate
from alien.errors import AlienError, Forbidden, ValidationError
from alien.platforms.bearer_tokens import NoToken, TokenFile
from alien.platforms.kubernetes.error_shape import kubernetes_error_response
from alien.platforms.kubernetes.upstream import (
    KubernetesApiUpstream,
    in_cluster_server,
    is_kubernetes_api,
)
from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import RequestHead, iterate_once
from alien.tunnel import TunnelStreamReset


@pytest.mark.parametrize(
    ("env", "server"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
         "https://10.96.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1"}, "https://[fd00::1]:443"),
        ({}, None),
    ],
)  # fmt: skip
def test_the_in_cluster_server_comes_from_the_pods_environment(
    env: dict[str, str], server: str | None
) -> None:
    assert in_cluster_server(env) == server


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("https://kubernetes.default.svc/api/v1/pods", True),
        ("https://kubernetes.default.svc:443/version", True),
        ("http://kubernetes.default.svc/version", False),
        ("https://kubernetes.default.svc:6443/version", False),
        ("https://kubernetes.default.svc.evil.example/version", False),
        ("/version", False),
        ("https://xn--api-.default.svc/version", False),  # malformed IDNA: not an error
    ],
)
def test_only_the_cluster_api_host_is_the_cluster_api(target: str, expected: bool) -> None:
    assert is_kubernetes_api(target) is expected


async def test_other_hosts_are_refused_and_an_unreachable_server_is_said_so() -> None:
    upstream = KubernetesApiUpstream("https://127.0.0.1:9", NoToken(), ca_file=None)
    try:
        other = RequestHead.create("GET", "https://example.com/version", [])
        with pytest.raises(ValidationError):
            await upstream.send(other, iterate_once(b""))
        exec_head = RequestHead.create(
            "POST",
            "https://kubernetes.default.svc/api/v1/namespaces/x/pods/web/exec",
            [("connection", "Upgrade"), ("upgrade", "websocket")],
        )
        with pytest.raises(AlienError) as refused:  # nothing listens on port 9
            await upstream.send(exec_head, iterate_once(b""))
        assert refused.value.code == "UPSTREAM_UNREACHABLE" and refused.value.status == 502
    finally:
        await upstream.aclose()


@asynccontextmanager
async def api_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[KubernetesApiUpstream, int]]:
    """A TLS server playing the cluster's API server with ``serve`` on ``host``, and the
    agent's upstream to it (the agent's token in a file, the server's certificate as the
    cluster CA)."""
    certificate = SessionCertificate.generate(ip_addresses=(host,))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(certificate.cert_pem)
        key.write_bytes(certificate.key_pem)
        tls.load_cert_chain(cert, key)
        server = await asyncio.start_server(serve, host, 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        name = f"[{host}]" if ":" in host else host
        upstream = KubernetesApiUpstream(
            f"https://{name}:{port}",
            TokenFile(_token_file(tmp), field="kubernetes.token_file"),
            ca_file=str(cert),
        )
        try:
            yield upstream, port
        finally:
            await upstream.aclose()
            server.close()


EXEC = RequestHead.create(
    "GET",
    "https://kubernetes.default.svc/api/v1/namespaces/x/pods/web/exec?command=ls",
    [
        ("host", "kubernetes.default.svc"),
        ("authorization", "Bearer the-session-token"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-protocol", "v5.channel.k8s.io"),
    ],
)


async def _handshake(head: RequestHead, host: str = "127.0.0.1") -> tuple[list[str], int, bytes]:
    """The lines of the request head the API server received for ``head`` (which it refuses:
    ``403 not ok``), the server's port, and the answer's body the upstream passed back."""
    received: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\n\r\nnot ok")
        await writer.drain()

    async with api_server(refuse, host) as (upstream, port):
        response = await upstream.send(head, iterate_once(b""))
        body = b"".join([chunk async for chunk in response.body])
        await response.aclose()
    assert response.head.status == 403
    return received[0].decode().split("\r\n"), port, body


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_an_upgrade_is_written_as_sent_and_a_refusal_answered_whole(host: str) -> None:
    """The request head goes out in origin form with the agent's token and the client's
    upgrade headers (``Host`` bracketing an IPv6 address); an API server that does not switch
    protocols is an ordinary answer."""
    lines, port, body = await _handshake(EXEC, host)
    assert body == b"not ok"
    assert lines[0] == "GET /api/v1/namespaces/x/pods/web/exec?command=ls HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["host"] == (f"[::1]:{port}" if host == "::1" else f"127.0.0.1:{port}")
    assert headers["authorization"] == "Bearer the-agents-token"
    assert headers["upgrade"] == "websocket" and headers["connection"] == "Upgrade"
    assert headers["sec-websocket-protocol"] == "v5.channel.k8s.io"


async def test_an_upgrade_sends_no_hop_by_hop_header_but_the_upgrade_itself() -> None:
    """Headers meant for the hop to the agent — a ``Proxy-Authorization`` of the caller's among
    them, and any its ``Connection`` names — stop there, as on every other path; the API server
    gets ``Connection: Upgrade`` and ``Upgrade``, and nothing else of the kind."""
    hops = [
        ("proxy-authorization", "Basic ZW5naW5lZXI6c2VjcmV0"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("x-hop", "named by Connection"),
    ]
    head = RequestHead.create(
        EXEC.method,
        EXEC.target,
        [*EXEC.with_header("connection", "keep-alive, Upgrade, X-Hop").headers, *hops],
    )
    lines, _port, _body = await _handshake(head)
    names = [line.split(": ", 1)[0] for line in lines[1:] if line]
    assert not {"proxy-authorization", "keep-alive", "te", "x-hop"} & set(names)
    assert names.count("connection") == names.count("upgrade") == 1
    assert "connection: Upgrade" in lines and "upgrade: websocket" in lines


@pytest.mark.parametrize("client_leaves", ["reset", "end"])
async def test_the_api_server_connection_ends_when_the_client_leaves(
    client_leaves: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``101`` the API server would hold an exec open for hours: once the client's side
    is gone the agent closes the connection — at once when it was cut off (kubectl
    interrupted), after a short grace when it ended."""
    grace = 0.3 if client_leaves == "end" else 30.0
    monkeypatch.setattr("alien.platforms.kubernetes.upgrade.CLIENT_GONE_GRACE", grace)
    seen: list[bytes] = []
    closed = asyncio.Event()

    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
        while chunk := await reader.read(1024):  # the exec runs until its connection ends
            seen.append(chunk)
        closed.set()

    async def client() -> AsyncIterator[bytes]:
        yield b"stdin"
        await asyncio.sleep(0.1)
        if client_leaves == "reset":
            raise TunnelStreamReset(ErrorCode.CANCEL, "kubectl interrupted")

    async with api_server(switch) as (upstream, _port):
        response = await upstream.send(EXEC, client())
        assert response.head.status == 101
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await closed.wait()
            assert [chunk async for chunk in response.body] == []  # ends with the connection
        took = asyncio.get_running_loop().time() - started
        await response.aclose()
    assert seen == [b"stdin"]
    assert took < 2.0 and (client_leaves == "reset" or took >= grace)


def _token_file(directory: str) -> Path:
    path = Path(directory, "token")
    path.write_text("the-agents-token")
    return path


async def test_a_refusal_reads_as_a_kubernetes_status() -> None:
    error = AlienError("nope", code="SOMETHING")
    response = kubernetes_error_response(RequestHead.create("GET", "/x", []), error)
    body = b"".join([chunk async for chunk in response.body])
    status = json.loads(body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == 500 and status["message"] == "nope (SOMETHING)"


async def test_an_api_server_that_never_answers_the_upgrade_is_a_clear_502(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("alien.platforms.kubernetes.upgrade.ANSWER_TIMEOUT", 0.3)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async with api_server(silent) as (upstream, _port):
        with pytest.raises(AlienError) as failed:
            await upstream.send(EXEC, iterate_once(b""))
    assert failed.value.status == 502 and failed.value.code == "UPSTREAM_UNREACHABLE"
    assert "did not answer within 0.3 s" in failed.value.message


BEARER_PROTOCOL = "base64url.bearer.authorization.k8s.io.ZW5naW5lZXJzLXRva2Vu"


@pytest.mark.parametrize(
    ("target", "header", "code"),
    [
        ("/api/v1/secrets", ("Impersonate-User", "system:admin"), "IMPERSONATION_NOT_ALLOWED"),
        ("/api/v1/secrets", ("impersonate-group", "system:masters"), "IMPERSONATION_NOT_ALLOWED"),
        ("/api/v1/secrets", ("Impersonate-Uid", "0"), "IMPERSONATION_NOT_ALLOWED"),
        ("/api/v1/secrets", ("Impersonate-Extra-scopes", "all"), "IMPERSONATION_NOT_ALLOWED"),
        (
            "/api/v1/secrets",
            ("Sec-WebSocket-Protocol", f"v5.channel.k8s.io, {BEARER_PROTOCOL}"),
            "CALLER_CREDENTIAL_REFUSED",
        ),
        ("/api/v1/secrets?access_token=t", ("x-any", "1"), "CALLER_CREDENTIAL_REFUSED"),
        ("/api/v1/secrets?limit=1&access%5Ftoken=t", ("x-any", "1"), "CALLER_CREDENTIAL_REFUSED"),
    ],
)
@pytest.mark.parametrize("upgrade", [False, True], ids=["call", "exec"])
async def test_a_call_choosing_whom_it_runs_as_is_refused_before_the_api_server(
    target: str, header: tuple[str, str], code: str, upgrade: bool
) -> None:
    """A call runs as the agent's service account, and is refused loudly (403) before any
    connection when it asks otherwise: ``kubectl --as`` (``--as-group``, ``--as-uid``,
    ``--as-user-extra``) would run it as another user whenever the account may impersonate; a
    token of the caller's — as a WebSocket subprotocol (kube-apiserver reads it when the
    agent's token fails) or an ``access_token`` parameter (OpenShift reads that) — would run it
    as whoever that token names."""
    connected: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(True)
        writer.close()

    headers = [header]
    if upgrade:
        headers += [("connection", "Upgrade"), ("upgrade", "websocket")]
    head = RequestHead.create("GET", f"https://kubernetes.default.svc{target}", headers)
    async with api_server(serve) as (upstream, _port):
        with pytest.raises(Forbidden) as refused:
            await upstream.send(head, iterate_once(b""))
    assert (refused.value.status, refused.value.code) == (403, code)
    assert connected == []


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/api/v1/namespaces/shop/serviceaccounts/default/token", b"{}"),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", b"{}"),
        (
            "POST",
            "/api/v1/namespaces/shop/secrets",
            b'{"kind": "Secret", "type": "kubernetes.io/service-account-token"}',
        ),
    ],
)
async def test_a_call_minting_a_credential_is_refused_before_the_api_server(
    method: str, target: str, body: bytes
) -> None:
    """A token, a binding, a token Secret would outlive the session: refused with a 403 before
    any connection (:mod:`alien.platforms.kubernetes.credential_operations` says what)."""
    connected: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(True)
        writer.close()

    head = RequestHead.create(
        method, f"https://kubernetes.default.svc{target}", [("content-type", "application/json")]
    )
    async with api_server(serve) as (upstream, _port):
        with pytest.raises(Forbidden) as refused:
            await upstream.send(head, iterate_once(body))
    assert (refused.value.status, refused.value.code) == (403, "CREDENTIAL_MINTING_REFUSED")
    assert connected == []
