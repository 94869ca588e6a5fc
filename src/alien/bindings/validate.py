"""Argument checks shared by every backend, so bad input fails the same way on every platform.

The limits are the smallest common denominator of the cloud services behind the interfaces
(SQS, DynamoDB, Secrets Manager): code that passes them locally will not hit a surprise
limit after deployment.
"""

from __future__ import annotations

import math
import re

from alien.errors import ValidationError

MAX_VALUE_BYTES = 256 * 1024
"""Largest kv value or queue message body (SQS's classic message limit)."""

MAX_SECRET_BYTES = 64 * 1024
"""Largest secret value (Secrets Manager's limit)."""

MAX_SECRET_NAME = 255

_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@/-]*")
_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=(\"[^\"\\]*\"|[\w.+-]+))*", re.ASCII)


def number(value: object, field: str, *, low: float, high: float) -> float:
    """A finite number of seconds (or similar) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number, not {type(value).__name__}", field=field)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValidationError(f"{field} must be between {low:g} and {high:g}", field=field)
    return float(value)


def count(value: object, field: str, *, low: int, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (no upper bound when ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{field} must be an integer, not {type(value).__name__}", field=field
        )
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError(f"{field} must be {bound}", field=field)
    return value


def limit(value: object) -> int | None:
    """``None`` (no limit) or a non-negative integer."""
    return None if value is None else count(value, "limit", low=0)


def prefix(value: object) -> str:
    """A listing prefix: any text (an empty one lists everything)."""
    if not isinstance(value, str):
        raise ValidationError(
            f"prefix must be a string, not {type(value).__name__}", field="prefix"
        )
    return value


def payload(value: object, field: str, *, max_bytes: int = MAX_VALUE_BYTES) -> bytes:
    """A small value (kv value, message body): bytes-like, or text stored as UTF-8."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        raise ValidationError(
            f"{field} must be bytes or str, not {type(value).__name__}", field=field
        )
    if len(data) > max_bytes:
        raise ValidationError(
            f"{field} is {len(data)} bytes, the limit is {max_bytes}", field=field
        )
    return data


def secret_name(value: object) -> str:
    """Secret names: letters, digits and ``._+=@/-``, starting with a letter or digit."""
    if not isinstance(value, str):
        raise ValidationError(
            f"secret name must be a string, not {type(value).__name__}", field="name"
        )
    if not 0 < len(value) <= MAX_SECRET_NAME or not _SECRET_NAME.fullmatch(value):
        raise ValidationError(
            f"invalid secret name {value[:80]!r}: use 1-{MAX_SECRET_NAME} letters, digits and "
            "._+=@/- starting with a letter or digit",
            field="name",
        )
    return value


def secret_value(value: object) -> str:
    """Secret values are text; the message never echoes the value."""
    if not isinstance(value, str):
        raise ValidationError(
            f"secret value must be a string, not {type(value).__name__}", field="value"
        )
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_SECRET_BYTES:
        raise ValidationError(
            f"secret value is {size} bytes, the limit is {MAX_SECRET_BYTES}", field="value"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("secret value is not valid Unicode text", field="value") from None
    return value


def content_type(value: object) -> str:
    """A MIME type such as ``text/plain; charset=utf-8``."""
    if not isinstance(value, str) or len(value) > 255 or not _CONTENT_TYPE.fullmatch(value):
        raise ValidationError(
            f"invalid content type {str(value)[:80]!r}: expected 'type/subtype[; param=value]'",
            field="content_type",
        )
    return value
