"""Turn whatever app code hands to ``Storage.put`` into a stream of byte chunks.

Backends consume one shape (an iterator of ``bytes``) whatever the caller passed: a bytes
object, text, a binary file, or any iterable of byte chunks. Streams are read in bounded
chunks, so storing a multi-gigabyte file never holds it in memory.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from alien.errors import ValidationError

CHUNK_SIZE = 1 << 20

Data = bytes | bytearray | memoryview | str | BinaryIO | Iterable[bytes]


def _bad(why: str) -> ValidationError:
    return ValidationError(f"data {why}", field="data")


def _read_stream(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if isinstance(chunk, str):
            raise _bad("is a text-mode file; open it in binary mode ('rb')")
        if not chunk:
            return
        yield bytes(chunk)


def _checked(chunks: Iterable[object]) -> Iterator[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise _bad(f"iterable yielded {type(chunk).__name__}; it must yield bytes")
        if chunk:
            yield bytes(chunk)


def iter_chunks(data: object) -> Iterator[bytes]:
    """Validate ``data`` and return its bytes as an iterator of non-empty chunks."""
    if isinstance(data, str):
        return iter([data.encode("utf-8")])
    if isinstance(data, bytes | bytearray | memoryview):
        return iter([bytes(data)])
    if callable(getattr(data, "read", None)):
        return _read_stream(data)  # type: ignore[arg-type]
    if isinstance(data, Iterable):
        return _checked(data)
    raise _bad(
        f"must be bytes, str, a binary file or an iterable of bytes, not {type(data).__name__}"
    )


def default_content_type(key: str, data: object) -> str:
    """The content type stored when the caller gives none: by extension, else by data type."""
    guessed, _encoding = mimetypes.guess_type(key, strict=False)
    if guessed:
        return guessed
    if isinstance(data, str):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
