"""``Call``: one API call as plain data (method, path, body, how to decode the answer).

Kept apart from :mod:`alien.client.calls` (the calls themselves and their pydantic models) so
that a path whose start-up matters — ``alien debug`` — can describe and execute calls without
importing pydantic or httpx (about a quarter of a second on a small machine).

User input becomes part of a path only through :func:`path_segment` (an id: one segment) or
:func:`deployment_ref` (``dep_…``, ``name`` or ``group/name``). The manager decodes ``%2F``
before it routes, and httpx resolves ``.`` and ``..``, so quoting alone cannot keep an id in its
segment: ``""``, ``.``, ``..`` or a ``/`` would reach a different route (or none) and answer
with a confusing error. They are refused here, locally, naming the field. ``Call`` checks its
path as well, so a caller that builds one by hand gets the same refusal instead of a stray route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

from alien.errors import ValidationError

T = TypeVar("T")

#: Extra seconds a long-poll request is given over its server-side wait before it counts as lost.
LONG_POLL_SLACK = 15.0

_DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    timeout: float | None = None
    """Read timeout for this call (long polls); ``None``: the client's default."""

    def __post_init__(self) -> None:
        _check_path(self.method, self.path)


def _check_path(method: str, path: str) -> None:
    """Refuse a path with an empty, ``.``/``..`` or ``%2F``-holding segment: an id went wrong.

    No route of the manager has such a segment, so one here means user input built the path
    without :func:`path_segment`; better a local one-line error than ``no such route`` or, with
    ``..``, an answer from another route.
    """
    parent, *segments = path.partition("?")[0].split("/")
    for segment in segments:
        value = unquote(segment)
        if not value:
            raise ValidationError(f"the id after {parent}/ must not be empty ({method} {path})")
        if value in _DOT_SEGMENTS or "/" in value:
            raise ValidationError(f"{value!r} is not a valid id after {parent}/ ({method} {path})")
        parent = f"{parent}/{segment}"


def decode_nothing(_: Any) -> None:
    return None


def path_segment(value: str, field: str, *, safe: str = "") -> str:
    """``value`` quoted as exactly one path segment, or a local error naming ``field``.

    ``safe`` may keep characters such as ``:`` readable, never ``/``.
    """
    if "/" in safe:
        raise ValueError("a path segment never keeps '/' unquoted")
    if not value:
        raise ValidationError(f"{field} must not be empty", field=field)
    if value in _DOT_SEGMENTS:
        raise ValidationError(f"{field} {value!r} is not a valid id", field=field)
    if "/" in value:
        raise ValidationError(f"{field} {value!r} must not contain '/'", field=field)
    return quote(value, safe=safe)


def deployment_ref(ref: str, field: str = "deployment") -> str:
    """A deployment reference in a path: ``group/name`` keeps its slash (the route takes it).

    The manager resolves ``dep_…``, a bare name, or ``group/name`` (``resolve_deployment``), and
    group and deployment names are DNS labels, so a ref has at most one ``/`` and no part of it
    is empty, ``.`` or ``..``.
    """
    if not ref:
        raise ValidationError(f"{field} must not be empty", field=field)
    parts = ref.split("/")
    if len(parts) > 2 or any(not part or part in _DOT_SEGMENTS for part in parts):
        raise ValidationError(
            f"{field} {ref!r} is not a deployment id, name or group/name", field=field
        )
    return "/".join(quote(part, safe="") for part in parts)
