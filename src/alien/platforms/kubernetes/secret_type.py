"""The type a Secret's create or replace body declares, read the way kube-apiserver may read it,
for the credential screen (:mod:`.credential_operations`): a ``kubernetes.io/service-account-token``
Secret is given a token that never expires, a ``bootstrap.kubernetes.io/token`` one is a token.

kubectl sends built-in objects as protobuf (``application/vnd.kubernetes.protobuf``: ``k8s\\0``,
then a ``runtime.Unknown`` whose ``raw`` is the ``Secret`` message, ``type`` its field 3) and
others as JSON; both are read. Every candidate is returned — each ``raw`` and each field 3 in a
repeated protobuf (the server keeps the last), each top-level key spelt ``type`` in any case in
JSON (older API servers matched keys case-insensitively) — so that none is missed. What cannot
be read for certain is refused (``Forbidden``): another content type (YAML, CBOR), a content
encoding, a body that does not parse, a type of the wrong kind, an encoded ``raw``, a field key
the server would read as another field (:func:`_field_number`).
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
_MAX_KEY_BYTES = 5  # a key of field 2**29 - 1, wire type 7, fills 32 bits: 5 varint bytes
_MAX_FIELD_NUMBER = 2**29 - 1  # protobuf's largest


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
        start = position
        key, position = _varint(message, position)
        number, wire = _field_number(key, position - start), key & 7
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


def _field_number(key: int, size: int) -> int:
    """The field number of a ``key`` varint of ``size`` bytes, if every reader agrees on it; else
    ``ValueError``. kube-apiserver's generated (gogo) decoders keep ``int32(key >> 3)``, dropping
    the high bits of a longer key: a key for field ``2**32 + 3`` is field 3 (a Secret's ``type``)
    to the server and an unknown field to a full-width reader. Within protobuf's range (1 to
    ``2**29 - 1``, at most 5 bytes) both read the same number."""
    number = key >> 3
    if size > _MAX_KEY_BYTES or not 0 < number <= _MAX_FIELD_NUMBER:
        raise ValueError(f"a field key read differently elsewhere (field {number})")
    return number


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
