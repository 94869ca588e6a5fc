"""The stdlib decoding of the session routes: strict types, unknown fields ignored, no secrets
in ``repr``, and JSON out as pydantic wrote it."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.debug.session_calls import (
    DebugSessionInfo,
    OpenedSession,
    PushTarget,
    from_json,
    to_json,
    waiting_for,
)

SESSION: dict[str, Any] = {
    "id": "dbg_1",
    "deployment_id": "dep_1",
    "deployment": "g/n",
    "channel": "aws",
    "actor": "key_a",
    "reason": "r",
    "state": "active",
    "ttl_seconds": 60,
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-01T00:01:00.250000Z",
    "tunnel_path": "/v1/debug-sessions/dbg_1/tunnel",
    "requests": 3,
}


def test_decodes_a_session_and_ignores_unknown_fields() -> None:
    info = from_json(DebugSessionInfo, {**SESSION, "from_a_newer_manager": [1, 2]})
    assert info.expires_at == datetime(2026, 1, 1, 0, 1, 0, 250000, tzinfo=UTC)
    assert info.requests == 3 and info.bytes_in == 0 and info.exit_code is None
    assert not info.ended


def test_token_is_kept_out_of_repr() -> None:
    opened = from_json(OpenedSession, {**SESSION, "token": "ax_dbg_secret"})
    assert opened.token == "ax_dbg_secret"
    assert "ax_dbg_secret" not in repr(opened)


def test_to_json_round_trips_with_utc_as_z() -> None:
    info = from_json(DebugSessionInfo, SESSION)
    out = to_json(info)
    assert out["created_at"] == "2026-01-01T00:00:00Z"
    assert from_json(DebugSessionInfo, out) == info


@pytest.mark.parametrize(
    "change",
    [
        {"ttl_seconds": "60"},
        {"ttl_seconds": True},
        {"id": None},
        {"created_at": "yesterday"},
        {"exit_code": 1.5},
    ],
)
def test_wrong_types_are_errors_the_clients_report(change: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        from_json(DebugSessionInfo, {**SESSION, **change})


def test_missing_required_field_is_a_type_error() -> None:
    without_id = {k: v for k, v in SESSION.items() if k != "id"}
    with pytest.raises(TypeError):
        from_json(DebugSessionInfo, without_id)


def test_push_target_and_approvers() -> None:
    target = from_json(PushTarget, {"region": "eu-west-1", "allowed_services": ["s3"], "x": 1})
    assert target == PushTarget("eu-west-1", ["s3"])
    with pytest.raises(TypeError):
        from_json(PushTarget, {"region": "eu-west-1", "allowed_services": ["s3", 3]})
    assert waiting_for("dbg_1").decode({"waiting_for": ["customer"]}) == ["customer"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(sorted(SESSION)), json_values) | json_values)
def test_hostile_answers_decode_or_raise_only_type_and_value_errors(data: Any) -> None:
    with contextlib.suppress(TypeError, ValueError):
        from_json(DebugSessionInfo, data if not isinstance(data, dict) else {**SESSION, **data})
