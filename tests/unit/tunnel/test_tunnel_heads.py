"""The HTTP-on-a-stream convention: request metadata and the length-prefixed response head."""

from __future__ import annotations

import json
import struct

import pytest

from alien.protocol.http_exchange import RequestHead, ResponseHead
from alien.tunnel import TunnelMessageError
from alien.tunnel.http_heads import (
    MAX_HEAD_BYTES,
    encode_response_head,
    parse_request_meta,
    read_response_head,
    request_meta,
)
from tunnel.tunnel_support import connected


def test_request_meta_round_trips_exactly() -> None:
    head = RequestHead.create(
        "post", "/a%2Fb/c?x=%20&x=2", [("Host", "h"), ("X-A", "1"), ("x-a", "2")]
    )
    meta = request_meta(head)
    assert meta == {
        "kind": "http",
        "method": "POST",
        "target": "/a%2Fb/c?x=%20&x=2",
        "headers": [["host", "h"], ["x-a", "1"], ["x-a", "2"]],
    }
    assert parse_request_meta(json.loads(json.dumps(meta))) == head


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"kind": "tcp"}, "meta.kind"),
        ({"kind": "http", "method": "GE T", "target": "/", "headers": []}, "meta.method"),
        ({"kind": "http", "method": "GET", "target": "/a b", "headers": []}, "meta.target"),
        ({"kind": "http", "method": "GET", "target": "", "headers": []}, "meta.target"),
        ({"kind": "http", "method": "GET", "target": "/", "headers": {}}, "meta.headers"),
        ({"kind": "http", "method": "GET", "target": "/", "headers": [["a"]]}, "meta.headers.0"),
        (
            {"kind": "http", "method": "GET", "target": "/", "headers": [["a:b", "v"]]},
            "meta.headers.0",
        ),
        (
            {
                "kind": "http",
                "method": "GET",
                "target": "/",
                "headers": [["ok", "x"], ["a", "1\r\nb: 2"]],
            },
            "meta.headers.1",
        ),
    ],
)
def test_malformed_request_meta_is_refused_with_the_field(meta: dict, field: str) -> None:
    with pytest.raises(TunnelMessageError) as info:
        parse_request_meta(meta)
    assert info.value.field == field


async def test_a_response_head_is_read_and_the_body_follows() -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        await stream.end()
        peer = await server.accept()
        head = ResponseHead.create(206, [("Content-Range", "bytes 0-1/2"), ("ETag", '"é"')])
        await peer.send(encode_response_head(head) + b"body")
        await peer.end()
        assert await read_response_head(stream) == head
        assert b"".join([c async for c in stream]) == b"body"


def framed(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (struct.pack(">I", MAX_HEAD_BYTES + 1), "response.head"),
        (framed(b"{{{"), "response.head"),
        (framed(b"\xff\xfe"), "response.head"),
        (framed(b"[]"), "response.head"),
        (framed(b'{"status":99,"headers":[]}'), "response.status"),
        (framed(b'{"status":true,"headers":[]}'), "response.status"),
        (framed(b'{"status":200}'), "response.headers"),
        (framed(b'{"status":200,"headers":[[1,2]]}'), "response.headers.0"),
        (framed(b'{"status":200,"headers":[["a","b\\nc"]]}'), "response.headers.0"),
        (struct.pack(">I", 6), "stream"),  # the stream ends inside the head
    ],
)
async def test_malformed_response_heads_are_refused(raw: bytes, field: str) -> None:
    async with connected() as (client, server):
        stream = await client.open_stream({})
        await stream.end()
        peer = await server.accept()
        await peer.send(raw)
        await peer.end()
        with pytest.raises(TunnelMessageError) as info:
            await read_response_head(stream)
        assert info.value.field == field


def test_an_oversized_response_head_is_refused_before_sending() -> None:
    head = ResponseHead.create(200, [("x-big", "v" * MAX_HEAD_BYTES)])
    with pytest.raises(TunnelMessageError):
        encode_response_head(head)
