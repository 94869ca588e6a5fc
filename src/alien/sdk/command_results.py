"""Turning a handler's return value into a command result, and back for readers.

``CommandResponse.result`` is JSON, so a handler's value is converted like this:

* JSON-able values (``dict``/``list``/``str``/numbers/``bool``/``None``, and what pydantic knows how
  to serialise: models, dataclasses, ``datetime``, ``UUID``, enums, tuples, sets) become that JSON.
  Bytes *nested* inside such a value become base64 strings (pydantic's ``bytes_mode="base64"``).
  ``NaN``/``Infinity`` are refused: they are not JSON and other peers could not parse them.
* ``bytes`` (or ``bytearray``/``memoryview``) returned as the whole value is a **binary result**,
  carried as the one-key object ``{"$bytes": "<standard base64>"}`` (:data:`BINARY_KEY`). A JSON
  result of exactly that shape would be ambiguous, so it is refused; :func:`decode_result` turns a
  result back into ``bytes`` or JSON for the CLI and API clients.
* A result whose compact UTF-8 JSON exceeds ``MAX_INLINE_BYTES`` does not travel inline: the
  runtime's :data:`ResultOffload` stores that same JSON document and the response carries its
  ``BlobRef`` in ``result_ref``. A blob behind ``result_ref`` therefore always holds the JSON the
  inline ``result`` would have held, binary results included, so readers decode both the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_core import to_jsonable_python

from alien.errors import ValidationError
from alien.protocol.command_messages import BlobRef

BINARY_KEY = "$bytes"
"""The only key of an inline object that marks a binary result (value: standard base64)."""

ResultOffload = Callable[[bytes], Awaitable[BlobRef]]
"""Stores a too-large result (its JSON document, UTF-8) and returns where it now lives."""


class UnserialisableResult(Exception):
    """The handler returned something that cannot be a command result; the message says why."""


def encode_result(value: Any) -> Any:
    """The JSON value carrying ``value`` (see the module docstring for the rules)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {BINARY_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    try:
        jsonable = to_jsonable_python(value, bytes_mode="base64")
    except Exception as exc:  # pydantic's serialisation errors, circular references, ...
        raise UnserialisableResult(
            f"the handler returned a {type(value).__name__}, which is not JSON-serialisable: "
            f"{_first_line(exc)}"
        ) from None
    if _is_binary_marker(jsonable):
        raise UnserialisableResult(
            f"a result object whose only key is {BINARY_KEY!r} is reserved for binary results; "
            "return the bytes themselves"
        )
    return jsonable


def result_document(jsonable: Any) -> bytes:
    """``jsonable`` as compact UTF-8 JSON: what the inline size limit measures, what offload stores.

    Uses the same form as :func:`alien.protocol.command_messages.json_size`.
    """
    try:
        return json.dumps(
            jsonable, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, lone surrogates, too deep
        raise UnserialisableResult(f"the result is not valid JSON: {_first_line(exc)}") from None


def decode_result(result: Any) -> Any:
    """The value a reader should see: ``bytes`` for a binary result, else the JSON itself.

    Raises ``ValidationError`` (field ``result``) for a binary marker that is not valid base64.
    """
    if not _is_binary_marker(result):
        return result
    try:
        return base64.b64decode(result[BINARY_KEY], validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("binary result is not valid base64", field="result") from None


def _is_binary_marker(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BINARY_KEY), str)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
