"""What the re-signer puts on the wire to AWS: the caller's target byte for byte, no headers of
the HTTP client's own, no body for a request without one, the caller's body for one with one —
and a signed-chunk body with every chunk signed again for the upstream's key (a malformed one
answered with an AWS error)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from hashlib import sha256

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from alien.platforms.aws.credentials import AwsCredentials, StaticCredentialSource
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.aws.signed_chunks import SIGNED_CHUNKS, ChunkSigner, signing_key
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.protocol.http_exchange import RequestHead, iterate_once

CREDS = StaticCredentialSource(AwsCredentials("AKIAUPSTREAM00000001", "upstream-secret"))
TARGET = "/bucket/a/../b%20c+d%25e.txt?x-id=GetObject"


class RecordingServer:
    """Answers every request 200 and keeps each request's raw head and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []
        self.url = ""

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        length = next(
            (int(v) for k, _, v in (x.partition(": ") for x in lines) if k == "content-length"), 0
        )
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


def _signed_head(method: str, body: bytes, length: bool) -> RequestHead:
    request = AWSRequest(method=method, url=f"http://127.0.0.1:1{TARGET}", data=body)
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(Credentials("ASIACALLER0000000000", "s"), "s3", "eu-west-1").add_auth(request)
    headers = list(request.headers.items())
    if length:
        headers.append(("content-length", str(len(body))))
    return RequestHead.create(method, TARGET, headers)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_a_get_goes_out_exactly_and_without_a_body() -> None:
    async with RecordingServer() as server:
        policy = AwsEndpointPolicy.create("eu-west-1", ["s3"], endpoint_override=server.url)
        upstream = AwsResigningUpstream(policy, CREDS)
        response = await upstream.send(_signed_head("GET", b"", length=False), iterate_once(b""))
        assert b"".join([chunk async for chunk in response.body]) == b"ok"
        await response.aclose()
        await upstream.aclose()
    ((head, body),) = server.requests
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert request_line == f"GET {TARGET} HTTP/1.1"
    names = {line.partition(":")[0].lower() for line in header_lines if line}
    assert not names & {"transfer-encoding", "user-agent", "accept", "accept-encoding"}
    assert body == b""


async def test_a_put_body_streams_with_the_callers_length() -> None:
    data = bytes(range(256)) * 40
    async with RecordingServer() as server:
        policy = AwsEndpointPolicy.create("eu-west-1", ["s3"], endpoint_override=server.url)
        upstream = AwsResigningUpstream(policy, CREDS)
        response = await upstream.send(_signed_head("PUT", data, length=True), _chunks(data))
        assert response.head.status == 200
        await response.aclose()
        await upstream.aclose()
    ((head, body),) = server.requests
    assert f"content-length: {len(data)}".encode() in head.lower()
    assert b"transfer-encoding" not in head.lower()
    assert body == data


def _chunked_head(body: bytes) -> RequestHead:
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:1{TARGET}", data=b"")
    request.headers["x-amz-content-sha256"] = SIGNED_CHUNKS
    request.headers["content-encoding"] = "aws-chunked"
    request.headers["x-amz-decoded-content-length"] = "3000"
    SigV4Auth(Credentials("ASIACALLER0000000000", "s"), "s3", "eu-west-1").add_auth(request)
    return RequestHead.create(
        "PUT", TARGET, [*request.headers.items(), ("content-length", str(len(body)))]
    )


def _aws_chunked(data: bytes, size: int, signature: str = "0" * 64) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    return (
        b"".join(
            f"{len(p):x};chunk-signature={signature}\r\n".encode() + p + (b"\r\n" if p else b"")
            for p in pieces
        )
        + b"\r\n"
    )


async def test_signed_chunks_go_out_signed_for_the_upstream() -> None:
    data = bytes(range(250)) * 12
    caller_body = _aws_chunked(data, 1024)
    async with RecordingServer() as server:
        policy = AwsEndpointPolicy.create("eu-west-1", ["s3"], endpoint_override=server.url)
        upstream = AwsResigningUpstream(policy, CREDS)
        response = await upstream.send(_chunked_head(caller_body), _chunks(caller_body))
        assert response.head.status == 200
        await response.aclose()
        await upstream.aclose()
    ((head, body),) = server.requests
    headers = dict(
        line.partition(": ")[::2] for line in head.decode("latin-1").lower().split("\r\n")[1:]
    )
    amz_date = headers["x-amz-date"].upper()
    seed = headers["authorization"].rsplit("signature=", 1)[1]
    key = signing_key("upstream-secret", amz_date[:8], "eu-west-1", "s3")
    chain = ChunkSigner(key, amz_date, f"{amz_date[:8]}/eu-west-1/s3/aws4_request", seed)
    expected = [chain.chunk(sha256(p).hexdigest()) for p in (data[:1024], data[1024:2048])]
    expected += [chain.chunk(sha256(data[2048:]).hexdigest()), chain.chunk(sha256(b"").hexdigest())]
    assert len(body) == len(caller_body)
    assert re.findall(rb"chunk-signature=([0-9a-f]{64})", body) == [s.encode() for s in expected]
    assert body.replace(b"\r\n", b"").count(data[:1024]) == 1


async def test_a_malformed_chunked_body_is_answered_with_an_aws_error() -> None:
    caller_body = b"zz;chunk-signature=" + b"0" * 64 + b"\r\n"
    async with RecordingServer() as server:
        policy = AwsEndpointPolicy.create("eu-west-1", ["s3"], endpoint_override=server.url)
        upstream = AwsResigningUpstream(policy, CREDS)
        response = await upstream.send(_chunked_head(caller_body), _chunks(caller_body))
        body = b"".join([chunk async for chunk in response.body])
        await response.aclose()
        await upstream.aclose()
    assert response.head.status == 400
    assert b"IncompleteBody" in body and b"malformed aws-chunked body" in body
