"""Key validation shared by storage and kv (pure: no I/O).

Object keys become file paths on the local platform and S3/DynamoDB keys elsewhere. One set of
rules, checked before any backend sees a key, is what makes a key that works locally work in the
cloud too, and what guarantees a key can never name a file outside its bucket directory: keys
with ``..``/``.``/empty segments, a leading ``/``, backslashes or control characters are refused
rather than normalised, so two different keys never alias one file.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from alien.errors import InvalidKey

MAX_KEY_BYTES = 1024
"""S3's limit; also keeps local paths well under PATH_MAX."""

MAX_SEGMENT_BYTES = 255
"""NAME_MAX on Linux filesystems: a longer segment cannot be a file or directory name."""


def _refuse(key: object, why: str) -> InvalidKey:
    shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
    return InvalidKey(f"invalid key {shown}: {why}", field="key")


def validate_key(key: object) -> str:
    """Return ``key`` unchanged if it is safe and portable, else raise :class:`InvalidKey`."""
    if not isinstance(key, str):
        raise _refuse(key, f"must be a string, not {type(key).__name__}")
    if not key:
        raise _refuse(key, "must not be empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(key, "is not valid Unicode text (lone surrogate)") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise _refuse(key, f"is {len(encoded)} bytes in UTF-8, the limit is {MAX_KEY_BYTES}")
    for ch in key:
        if unicodedata.category(ch) == "Cc":
            raise _refuse(key, f"contains the control character U+{ord(ch):04X}")
    if "\\" in key:
        raise _refuse(key, "contains a backslash; use '/' to separate segments")
    if key.startswith("/"):
        raise _refuse(key, "must be relative (no leading '/')")
    for segment in key.split("/"):
        if segment == "":
            raise _refuse(key, "has an empty segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise _refuse(key, f"has a '{segment}' segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _refuse(key, f"has a segment longer than {MAX_SEGMENT_BYTES} bytes")
    return key


def key_segments(key: object) -> tuple[str, ...]:
    """Validate ``key`` and split it into path segments (each a plain file name)."""
    return tuple(validate_key(key).split("/"))


def key_path(root: PurePosixPath, key: object) -> PurePosixPath:
    """The path of ``key`` under ``root``, lexically; always strictly inside ``root``.

    Lexical containment is what this module can promise; backends that touch a real
    filesystem must additionally refuse symbolic links on the way (see
    :mod:`alien.bindings.local.fsutil`).
    """
    return root.joinpath(*key_segments(key))
