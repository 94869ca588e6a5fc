"""``Call``: one API call as plain data (method, path, body, how to decode the answer).

Kept apart from :mod:`alien.client.calls` (the calls themselves and their pydantic models) so
that a path whose start-up matters — ``alien debug`` — can describe and execute calls without
importing pydantic or httpx (about a quarter of a second on a small machine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

T = TypeVar("T")

#: Extra seconds a long-poll request is given over its server-side wait before it counts as lost.
LONG_POLL_SLACK = 15.0


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    timeout: float | None = None
    """Read timeout for this call (long polls); ``None``: the client's default."""


def decode_nothing(_: Any) -> None:
    return None


def deployment_ref(ref: str) -> str:
    """A deployment reference in a path: ``group/name`` keeps its slash (the route takes it)."""
    return quote(ref, safe="/")
