"""How an HTTP exchange is laid on a tunnel stream (the convention both ends must follow).

Request (the opener → responder direction)
    The stream's OPEN metadata is the request head::

        {"kind": "http", "method": "GET", "target": "/path?query",
         "headers": [["host", "s3.amazonaws.com"], ["x-amz-date", "..."], ...]}

    ``target`` is the raw request target exactly as received (origin form, or absolute form for
    a forward proxy), header names are lower-case, repeated headers stay separate and in order.
    The request body follows as the stream's DATA, then END (immediately, for no body).

Response (the responder → opener direction)
    The first bytes are the response head, length-prefixed: a 4-byte big-endian length ``n``
    (at most :data:`MAX_HEAD_BYTES`), then ``n`` bytes of UTF-8 JSON::

        {"status": 200, "headers": [["content-type", "application/xml"], ...]}

    then the response body, then END. A responder that fails after sending the head resets the
    stream (code :data:`UPSTREAM_FAILED`) so the opener never mistakes a cut body for a whole one.

Why in-band rather than a new frame type: the protocol carries metadata only on OPEN (from the
opener), and keeping HTTP out of the wire format means the manager can relay a stream between the
CLI's and the agent's connections byte for byte without parsing it, and the head is flow
controlled like everything else.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import RequestHead, ResponseHead
from alien.tunnel.errors import TunnelMessageError
from alien.tunnel.stream import TunnelStream

KIND = "http"
MAX_HEAD_BYTES = 1024 * 1024
UPSTREAM_FAILED = ErrorCode.APPLICATION_BASE + 1
"""RESET code: the responder's upstream failed after the response head was sent."""

_LENGTH = struct.Struct(">I")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def request_meta(head: RequestHead) -> dict[str, Any]:
    """OPEN metadata for ``head``."""
    return {
        "kind": KIND,
        "method": head.method,
        "target": head.target,
        "headers": [[name, value] for name, value in head.headers],
    }


def parse_request_meta(meta: dict[str, Any]) -> RequestHead:
    """The request head in a stream's OPEN metadata; :class:`TunnelMessageError` if malformed."""
    if meta.get("kind") != KIND:
        raise TunnelMessageError("the stream does not carry an HTTP request", field="meta.kind")
    method, target = meta.get("method"), meta.get("target")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise TunnelMessageError("the request method is not an HTTP token", field="meta.method")
    if not isinstance(target, str) or not target or _BAD_VALUE.search(target) or " " in target:
        raise TunnelMessageError("the request target is malformed", field="meta.target")
    return RequestHead.create(method, target, _headers(meta.get("headers"), "meta.headers"))


def encode_response_head(head: ResponseHead) -> bytes:
    """The length-prefixed response head the responder writes first."""
    raw = json.dumps(
        {"status": head.status, "headers": [[k, v] for k, v in head.headers]},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    if len(raw) > MAX_HEAD_BYTES:
        raise TunnelMessageError(
            f"a response head of {len(raw)} bytes exceeds {MAX_HEAD_BYTES}", field="headers"
        )
    return _LENGTH.pack(len(raw)) + raw


async def read_response_head(stream: TunnelStream) -> ResponseHead:
    """Read the response head off ``stream``; the body follows on the same stream."""
    (length,) = _LENGTH.unpack(await stream.read_exactly(_LENGTH.size))
    if length > MAX_HEAD_BYTES:
        raise TunnelMessageError(
            f"a response head of {length} bytes exceeds {MAX_HEAD_BYTES}", field="response.head"
        )
    return parse_response_head(await stream.read_exactly(length))


def parse_response_head(raw: bytes) -> ResponseHead:
    """A response head from its JSON (the bytes after the length prefix)."""
    try:
        head = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise TunnelMessageError("the response head is not JSON", field="response.head") from None
    if not isinstance(head, dict):
        raise TunnelMessageError("the response head is not an object", field="response.head")
    status = head.get("status")
    if type(status) is not int or not 100 <= status <= 599:
        raise TunnelMessageError("the response status is not 100-599", field="response.status")
    return ResponseHead.create(status, _headers(head.get("headers"), "response.headers"))


def _headers(value: object, field: str) -> list[tuple[str, str]]:
    """Header pairs, refusing anything that could split or smuggle an HTTP message."""
    if not isinstance(value, list):
        raise TunnelMessageError("headers must be a list of [name, value] pairs", field=field)
    pairs = []
    for index, pair in enumerate(value):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise TunnelMessageError(
                "a header is not a [name, value] pair", field=f"{field}.{index}"
            )
        name, text = pair
        if not _TOKEN.fullmatch(name):
            raise TunnelMessageError("a header name is not a token", field=f"{field}.{index}")
        if _BAD_VALUE.search(text):
            raise TunnelMessageError("a header value holds CR, LF or NUL", field=f"{field}.{index}")
        pairs.append((name, text))
    return pairs
