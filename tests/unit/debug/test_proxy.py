"""The loopback proxy in-process: authentication, host check, streaming both ways, TLS.

The upstream here is a small real implementation that hashes what it receives and streams back
a generated body; the AWS re-signing upstream is exercised end to end in tests/debug.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
from sigv4_helpers import KEY_ID, SECRET, signed

from alien.debug.auth import BearerTokenAuthenticator, presented_token
from alien.debug.proxy import LoopbackProxy
from alien.debug.tls import SessionCertificate, server_ssl_context
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.proxy_auth import SigV4SessionAuthenticator
from alien.platforms.aws.signed_chunks import ChunkSigner
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse

TOKEN = "session-token-0123456789abcdef"
MiB = 1024 * 1024
CHUNK = 64 * 1024


def pattern(offset: int, size: int) -> bytes:
    return bytes([(offset // CHUNK) % 251]) * size


async def generated(size: int) -> AsyncIterator[bytes]:
    for offset in range(0, size, CHUNK):
        yield pattern(offset, min(CHUNK, size - offset))


def generated_sha256(size: int) -> str:
    digest = sha256()
    for offset in range(0, size, CHUNK):
        digest.update(pattern(offset, min(CHUNK, size - offset)))
    return digest.hexdigest()


class HashingUpstream:
    """Reads the request body as a stream, then streams back ``x-reply-bytes`` bytes."""

    def __init__(self) -> None:
        self.seen: list[RequestHead] = []

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        self.seen.append(head)
        if head.target.startswith("/boom"):
            raise RuntimeError("upstream bug")
        digest = sha256()
        async for chunk in body:
            digest.update(chunk)
        size = int(head.get("x-reply-bytes") or 0)
        headers = [("x-request-sha256", digest.hexdigest()), ("content-length", str(size))]
        return UpstreamResponse(head=ResponseHead.create(200, headers), body=generated(size))


@pytest.fixture
async def bearer_proxy() -> AsyncIterator[tuple[LoopbackProxy, HashingUpstream]]:
    upstream = HashingUpstream()
    async with LoopbackProxy(upstream, BearerTokenAuthenticator(TOKEN)) as proxy:
        yield proxy, upstream


async def test_requests_without_the_token_are_refused(bearer_proxy) -> None:
    proxy, upstream = bearer_proxy
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        missing = await client.get("/x")
        wrong = await client.get("/x", headers={"Authorization": "Bearer not-the-token-at-all"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert upstream.seen == []


async def test_token_is_checked_and_not_forwarded(bearer_proxy) -> None:
    proxy, upstream = bearer_proxy
    basic = base64.b64encode(f"alien:{TOKEN}".encode()).decode()
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        bearer = await client.get("/a?b=%2F", headers={"Authorization": f"Bearer {TOKEN}"})
        proxied = await client.get("/c", headers={"Proxy-Authorization": f"Basic {basic}"})
    assert bearer.status_code == proxied.status_code == 200
    assert upstream.seen[0].target == "/a?b=%2F"
    assert all(h.get("authorization") is None for h in upstream.seen)
    assert all(h.get("proxy-authorization") is None for h in upstream.seen)


async def test_requests_for_other_hosts_are_refused(bearer_proxy) -> None:
    proxy, upstream = bearer_proxy
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.get(
            "/", headers={"Authorization": f"Bearer {TOKEN}", "Host": "evil.example"}
        )
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "host"
    assert upstream.seen == []


async def test_bodies_stream_both_ways(bearer_proxy) -> None:
    proxy, _ = bearer_proxy
    size = 16 * MiB
    async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
        request = client.build_request(
            "PUT",
            "/big",
            content=generated(size),
            headers={"Authorization": f"Bearer {TOKEN}", "x-reply-bytes": str(size)},
        )
        response = await client.send(request, stream=True)
        digest = sha256()
        async for chunk in response.aiter_raw():
            digest.update(chunk)
    assert response.headers["x-request-sha256"] == generated_sha256(size)
    assert digest.hexdigest() == generated_sha256(size)


async def test_upstream_failure_is_an_error_response_not_a_dead_proxy(bearer_proxy) -> None:
    proxy, _ = bearer_proxy
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        failed = await client.get("/boom", headers=auth)
        after = await client.get("/fine", headers=auth)
    assert failed.status_code == 500
    assert failed.json()["error"]["message"] == "the debug proxy failed"
    assert after.status_code == 200


async def test_tls_with_the_session_certificate(tmp_path: Path) -> None:
    cert = SessionCertificate.generate()
    (tmp_path / "cert.pem").write_bytes(cert.cert_pem)
    (tmp_path / "key.pem").write_bytes(cert.key_pem)
    context = server_ssl_context(tmp_path / "cert.pem", tmp_path / "key.pem")
    async with LoopbackProxy(
        HashingUpstream(), BearerTokenAuthenticator(TOKEN), ssl_context=context
    ) as proxy:
        assert proxy.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cadata=cert.cert_pem.decode())
        async with httpx.AsyncClient(verify=trusting) as client:
            response = await client.get(
                proxy.url + "/", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert response.status_code == 200
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(proxy.url + "/")
    assert cert.key_pem.decode() not in repr(cert)


async def test_sigv4_session_auth_hashes_bodies_that_declare_no_hash(tmp_path: Path) -> None:
    upstream = HashingUpstream()
    auth = SigV4SessionAuthenticator(KEY_ID, SECRET, spool_dir=tmp_path, max_spool_memory=1024)
    async with LoopbackProxy(upstream, auth, error_response=aws_error_response) as proxy:
        body = b"Action=GetCallerIdentity&Version=2011-06-15" * 100
        # Signed for the proxy's own address, as the aws CLI does; no x-amz-content-sha256.
        _, target, headers, _ = signed(
            "POST",
            "/",
            service="sts",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Host": proxy.url.removeprefix("http://"),
            },
        )
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            ok = await client.post(target, content=body, headers=headers)
            forged = await client.post(target, content=body + b"&x=1", headers=headers)
    assert ok.status_code == 200
    assert ok.headers["x-request-sha256"] == sha256(body).hexdigest()
    assert upstream.seen[0].get("x-amz-content-sha256") == sha256(body).hexdigest()
    assert forged.status_code == 403
    assert b"SignatureDoesNotMatch" in forged.content
    assert len(upstream.seen) == 1
    assert list(tmp_path.iterdir()) == []  # spool files are gone


async def test_sigv4_session_auth_bounds_what_it_spools(tmp_path: Path) -> None:
    upstream = HashingUpstream()
    auth = SigV4SessionAuthenticator(
        KEY_ID, SECRET, spool_dir=tmp_path, max_spool_memory=1024, max_spool_size=4096
    )
    async with LoopbackProxy(upstream, auth, error_response=aws_error_response) as proxy:
        body = b"x" * 10_000
        _, target, headers, _ = signed(
            "POST",
            "/",
            service="sts",
            body=body,
            headers={"Host": proxy.url.removeprefix("http://")},
        )
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post(target, content=body, headers=headers)
    assert response.status_code == 413
    assert b"EntityTooLarge" in response.content
    assert upstream.seen == []
    assert list(tmp_path.iterdir()) == []


def _chunked(headers: list[tuple[str, str]], chunks: list[bytes]) -> bytes:
    """An aws-chunked body chained from the request's signature with the session's key."""
    values = dict(headers)  # lower-case names, as received
    seed = values["authorization"].rsplit("Signature=", 1)[1]
    chain = ChunkSigner.seeded(SECRET, values["x-amz-date"], "eu-west-1", "s3", seed)
    out = b""
    for chunk in [*chunks, b""]:
        signature = chain.chunk(sha256(chunk).hexdigest())
        out += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    return out


async def test_sigv4_session_auth_verifies_every_signed_chunk() -> None:
    upstream = HashingUpstream()
    auth = SigV4SessionAuthenticator(KEY_ID, SECRET)
    async with LoopbackProxy(upstream, auth, error_response=aws_error_response) as proxy:
        _, target, headers, _ = signed(
            "PUT",
            "/bucket/key",
            payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            headers={"Host": proxy.url.removeprefix("http://")},
        )
        genuine = _chunked(headers, [b"a" * 5000, b"b" * 300])
        forged = genuine.replace(b"b" * 300, b"c" + b"b" * 299)
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            ok = await client.put(target, content=genuine, headers=headers)
            refused = await client.put(target, content=forged, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["x-request-sha256"] == sha256(genuine).hexdigest()  # passed on unchanged
    assert refused.status_code == 403
    assert b"SignatureDoesNotMatch" in refused.content


def test_presented_token_forms() -> None:
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("Basic " + base64.b64encode(b"u:pw").decode()) == "pw"
    assert presented_token("Basic !!!") is None
    assert presented_token("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert presented_token("Digest x") is None
