"""The debug-session routes as client calls, with answers decoded by the stdlib.

``alien debug`` runs these before every debugged command, so they stay off pydantic (see
:mod:`alien.client.lite`): the answers are frozen dataclasses, checked field by field against
their annotations (a wrong type raises ``TypeError``/``ValueError``, which the clients report as
``BadResponse``). Like the pydantic models of :mod:`alien.debug.api`, they mirror
``docs/API.md``, ignore unknown fields (an older CLI keeps working against a newer manager) and
keep the session token out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from alien.client.call import LONG_POLL_SLACK, Call, deployment_ref, path_segment

#: States in which a session is over.
ENDED_STATES = frozenset({"closed", "expired", "revoked", "denied"})

D = TypeVar("D")


def _checked(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return check


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(_checked(str)(value))


def _strings(value: Any) -> list[str]:
    return [_checked(str)(item) for item in _checked(list)(value)]


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _checked(str),
    "int": _checked(int),
    "datetime": _time,
    "list[str]": _strings,
}
_CONVERTERS |= {f"{name} | None": _optional(convert) for name, convert in _CONVERTERS.items()}


def from_json(cls: type[D], data: Any) -> D:
    """An instance of the dataclass ``cls`` from a JSON object (unknown keys ignored)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    given = {f.name: _CONVERTERS[str(f.type)](data[f.name]) for f in fields(cls) if f.name in data}
    return cls(**given)


def to_json(value: Any) -> dict[str, Any]:
    """A dataclass of this module as JSON-ready data (times in ISO 8601, UTC as ``Z``)."""
    return {
        key: item.isoformat().replace("+00:00", "Z") if isinstance(item, datetime) else item
        for key, item in asdict(value).items()
    }


@dataclass(frozen=True)
class DebugSessionInfo:
    id: str
    deployment_id: str | None
    deployment: str
    channel: str
    actor: str
    reason: str
    state: str
    ttl_seconds: int
    created_at: datetime
    tunnel_path: str
    started_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    exit_code: int | None = None
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


@dataclass(frozen=True)
class OpenedSession(DebugSessionInfo):
    token: str = field(repr=False, kw_only=True)


@dataclass(frozen=True)
class PushTarget:
    """What ``alien debug`` needs of a push-model AWS configuration."""

    region: str
    allowed_services: list[str]


def _session(data: Any) -> DebugSessionInfo:
    return from_json(DebugSessionInfo, data)


def _page(data: Any) -> list[DebugSessionInfo]:
    return [_session(item) for item in _checked(list)(data["items"])]


def session_path(session_id: str, suffix: str = "") -> str:
    return f"/v1/debug-sessions/{path_segment(session_id, 'session')}{suffix}"


def open_session(deployment: str, reason: str, ttl_seconds: int | None) -> Call[OpenedSession]:
    body: dict[str, Any] = {"deployment": deployment, "reason": reason}
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    return Call("POST", "/v1/debug-sessions", lambda d: from_json(OpenedSession, d), json=body)


def get_session(session_id: str) -> Call[DebugSessionInfo]:
    return Call("GET", session_path(session_id), _session)


def wait_session(session_id: str, known: str, timeout: float) -> Call[DebugSessionInfo]:
    """Long-poll until the session leaves state ``known`` (or ``timeout`` seconds pass)."""
    return Call(
        "GET",
        session_path(session_id, "/wait"),
        _session,
        params={"known": known, "timeout": timeout},
        timeout=timeout + LONG_POLL_SLACK,
    )


def close_session(session_id: str, exit_code: int | None) -> Call[DebugSessionInfo]:
    return Call("POST", session_path(session_id, "/close"), _session, json={"exit_code": exit_code})


def revoke_session(session_id: str, reason: str | None) -> Call[DebugSessionInfo]:
    body = {"reason": reason} if reason else {}
    return Call("POST", session_path(session_id, "/revoke"), _session, json=body)


def list_sessions(
    deployment: str | None = None, state: str | None = None, limit: int = 100
) -> Call[list[DebugSessionInfo]]:
    params: dict[str, Any] = {"limit": limit}
    params |= {k: v for k, v in {"deployment": deployment, "state": state}.items() if v}
    return Call("GET", "/v1/debug-sessions", _page, params=params)


def waiting_for(subject_id: str) -> Call[list[str]]:
    """Who must still approve ``subject_id`` (``GET /v1/approvals/{id}``: ``waiting_for``)."""
    return Call(
        "GET",
        f"/v1/approvals/{path_segment(subject_id, 'subject')}",
        lambda data: _strings(data.get("waiting_for", [])),
    )


def push_target(deployment: str) -> Call[PushTarget]:
    """The deployment's push-model AWS configuration (404: it has none, debug it by pull)."""
    path = f"/v1/aws-deployments/{deployment_ref(deployment)}"
    return Call("GET", path, lambda data: from_json(PushTarget, data))
