"""The type a Secret's create or replace body declares, read the way kube-apiserver may read it,
for the credential screen (:mod:`.credential_operations`): a ``kubernetes.io/service-account-token``
Secret is given a token that never expires.

kubectl sends built-in objects as protobuf (``application/vnd.kubernetes.protobuf``: ``k8s\\0``,
then a ``runtime.Unknown`` whose ``raw`` is the ``Secret`` message, ``type`` its field 3) and
others as JSON; both are read. Every candidate is returned — each ``raw`` and each field 3 in a
repeated protobuf (the server keeps the last), each top-level key spelt ``type`` in any case in
JSON (older API servers matched keys case-insensitively) — so that none is missed. What cannot
be read for certain is refused (``Forbidden``): another content type (YAML, CBOR), a content
encoding, a body that does not parse, a type of the wrong kind, an encoded ``raw``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from alien.platforms.credential_screen import minting_uncertain
from alien.protocol.http_exchange import RequestHead

PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"
_JSON_TYPES = ("", "application/json")  # none: the API server takes JSON
_LENGTH_DELIMITED = 2
_UNKNOWN_RAW, _UNKNOWN_CONTENT_ENCODING = 2, 3
_SECRET_TYPE = 3


def declared_types(head: RequestHead, content: bytes) -> list[str]:
    """The types a Secret body declares (none: the server defaults to ``Opaque``), or
    ``Forbidden`` when they cannot be told for certain."""
    encoding = (head.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise minting_uncertain(f"a Secret in content encoding {encoding!r}")
    content_type = (head.get("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        if content_type == PROTOBUF:
            return _protobuf_types(content)
        if content_type in _JSON_TYPES:
            return _json_types(content)
    except ValueError as exc:
        raise minting_uncertain(f"a Secret that does not parse: {exc}") from None
    raise minting_uncertain(f"a Secret as {content_type!r}")


def _json_types(content: bytes) -> list[str]:
    try:
        pairs = json.loads(content, object_pairs_hook=tuple)  # objects as (key, value) pairs
    except RecursionError:
        raise ValueError("nested too deep") from None
    if not isinstance(pairs, tuple):
        raise ValueError("not a JSON object")
    types = [value for key, value in pairs if key.casefold() == "type"]
    if not all(isinstance(value, str) for value in types):
        raise ValueError("a type that is not a string")
    return types


def _protobuf_types(content: bytes) -> list[str]:
    if not content.startswith(PROTOBUF_MAGIC):
        raise ValueError("no protobuf envelope")
    raws = []
    for number, wire, value in _fields(content[len(PROTOBUF_MAGIC) :]):
        if number in (_UNKNOWN_RAW, _UNKNOWN_CONTENT_ENCODING) and wire != _LENGTH_DELIMITED:
            raise ValueError(f"field {number} of the wrong wire type")
        if number == _UNKNOWN_CONTENT_ENCODING and value:
            raise ValueError("an encoded object")
        if number == _UNKNOWN_RAW:
            raws.append(value)
    types = []
    for raw in raws:
        for number, wire, value in _fields(raw):
            if number == _SECRET_TYPE:
                if wire != _LENGTH_DELIMITED:
                    raise ValueError("a type of the wrong wire type")
                types.append(value.decode("latin-1"))
    return types


def _fields(message: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(field number, wire type, value)`` of each field of a protobuf message, in order (a
    varint's value left empty: nothing here reads one); ``ValueError`` when it is malformed (or
    uses groups, which Kubernetes never does)."""
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        value = b""
        if wire == 0:
            _, position = _varint(message, position)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, position = message[position : position + size], position + size
        elif wire == _LENGTH_DELIMITED:
            size, position = _varint(message, position)
            value, position = message[position : position + size], position + size
        else:
            raise ValueError(f"wire type {wire}")
        if position > len(message):
            raise ValueError("truncated")
        yield number, wire, value


def _varint(message: bytes, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(message):
            raise ValueError("truncated")
        byte = message[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise ValueError("a varint over 10 bytes")
