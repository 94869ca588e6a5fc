"""The agent's Kubernetes API upstream: what it accepts and refuses, and how an upgrade request
is written; the happy paths (the service account token sent to the API server, its CA checked,
``kubectl exec`` both ways) are end to end in tests/debug_pull/test_pull_kubectl.py."""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from pathlib import Path

import pytest

from alien.debug.tls import SessionCertificate
from alien.errors import AlienError, ValidationError
from alien.platforms.bearer_tokens import NoToken, TokenFile
from alien.platforms.kubernetes.error_shape import kubernetes_error_response
from alien.platforms.kubernetes.upstream import (
    KubernetesApiUpstream,
    in_cluster_server,
    is_kubernetes_api,
)
from alien.protocol.http_exchange import RequestHead, iterate_once


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


async def test_an_upgrade_is_written_as_sent_and_a_refusal_answered_whole() -> None:
    """The request head goes out in origin form with the agent's token and the client's
    upgrade headers; an API server that does not switch protocols is an ordinary answer."""
    received: list[bytes] = []

    async def api_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\n\r\nnot ok")
        await writer.drain()

    certificate = SessionCertificate.generate()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(certificate.cert_pem)
        key.write_bytes(certificate.key_pem)
        tls.load_cert_chain(cert, key)
        server = await asyncio.start_server(api_server, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        upstream = KubernetesApiUpstream(
            f"https://127.0.0.1:{port}",
            TokenFile(_token_file(tmp), field="kubernetes.token_file"),
            ca_file=str(cert),
        )
        try:
            head = RequestHead.create(
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
            response = await upstream.send(head, iterate_once(b""))
            body = b"".join([chunk async for chunk in response.body])
            await response.aclose()
        finally:
            await upstream.aclose()
            server.close()
    assert (response.head.status, body) == (403, b"not ok")
    lines = received[0].decode().split("\r\n")
    assert lines[0] == "GET /api/v1/namespaces/x/pods/web/exec?command=ls HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["host"] == f"127.0.0.1:{port}"
    assert headers["authorization"] == "Bearer the-agents-token"
    assert headers["upgrade"] == "websocket" and headers["connection"] == "Upgrade"
    assert headers["sec-websocket-protocol"] == "v5.channel.k8s.io"


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
