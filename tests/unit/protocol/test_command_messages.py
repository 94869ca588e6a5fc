"""Command wire messages: names, envelopes, responses, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import ValidationError
from alien.protocol.command_messages import (
    COMMAND_NAME_PATTERN,
    ERROR_CODES,
    MAX_INLINE_BYTES,
    CommandEnvelope,
    CommandResponse,
    fits_inline,
    validate_command_name,
)
from alien.protocol.wire import parse

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA = "0" * 63 + "1"


def envelope(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "cmd_01jd3k",
        "deployment_id": "dep_01jd3k",
        "command": "rotate-keys",
        "params": {"force": True},
        "lease_id": "lse_x1",
        "lease_expires_at": (T0 + timedelta(seconds=30)).isoformat(),
        "attempt": 1,
        "max_attempts": 3,
        "deadline": (T0 + timedelta(minutes=5)).isoformat(),
        "response_url": "https://manager.example/v1/commands/cmd_01jd3k/response",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "name", ["a", "0", "generate-report", "db.migrate", "sync_users", "x" * 128, "a-b.c_d9"]
)
def test_valid_command_names(name: str) -> None:
    assert validate_command_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-x", ".x", "_x", "Report", "a b", "a/b", "x" * 129, "é", "a\n", None, 3, "a;rm"],
)
def test_invalid_command_names(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_command_name(name)
    assert info.value.field == "command"


@given(st.text(max_size=140))
def test_name_validation_agrees_with_the_published_pattern(name: str) -> None:
    import re

    expected = re.fullmatch(COMMAND_NAME_PATTERN, name) is not None and "\n" not in name
    try:
        validate_command_name(name)
    except ValidationError:
        assert not expected
    else:
        assert expected


def test_envelope_round_trips() -> None:
    parsed = parse(CommandEnvelope, envelope())
    assert parse(CommandEnvelope, parsed.model_dump_json()) == parsed
    assert parsed.deadline.tzinfo is UTC


def test_timestamps_are_normalised_to_utc() -> None:
    parsed = parse(CommandEnvelope, envelope(deadline="2026-01-01T02:05:00+02:00"))
    assert parsed.deadline == T0 + timedelta(minutes=5)
    assert parsed.deadline.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": None}, None),
        ({"params_ref": {"url": "https://b.example/x", "size": 1, "sha256": SHA}}, None),
        ({"params": None, "params_ref": {"url": "ftp://x/y", "size": 1, "sha256": SHA}}, "url"),
        ({"params": None, "params_ref": {"url": "https://b/x", "size": -1, "sha256": SHA}}, "size"),
        ({"params": None, "params_ref": {"url": "https://b/x", "size": 1, "sha256": "AB"}}, "sha"),
        ({"command": "Bad Name"}, "command"),
        ({"id": "dep_1"}, "id"),
        ({"attempt": 4}, None),
        ({"attempt": 0}, "attempt"),
        ({"lease_expires_at": "2026-01-01T01:00:00Z"}, None),
        ({"deadline": "2026-01-01T00:05:00"}, "deadline"),
        ({"response_url": "javascript:alert(1)"}, "response_url"),
        ({"response_url": "https://x.example/a b"}, "response_url"),
        ({"response_url": "https://x.example/a\u2003b"}, "response_url"),  # an em space
        ({"response_url": "https://x.example/a\x1cb"}, "response_url"),  # str.isspace's too
        ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, "traceparent"),
        ({"traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "traceparent"),
        ({"surprise": 1}, "surprise"),
        ({"params": {"blob": "x" * MAX_INLINE_BYTES}}, "params"),
    ],
)
def test_bad_envelopes_are_refused(changes: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        parse(CommandEnvelope, envelope(**changes))
    if field is not None:
        assert field in (info.value.field or "")
    assert "x" * 100 not in info.value.message  # the input is never echoed back


class TestResponse:
    def test_success_inline_or_by_reference(self) -> None:
        assert CommandResponse.success("cmd_1", "lse_1", {"n": 1}).ok
        ref = {"url": "https://b.example/r", "size": 9, "sha256": SHA}
        response = parse(
            CommandResponse,
            {"command_id": "cmd_1", "lease_id": "lse_1", "ok": True, "result_ref": ref},
        )
        assert response.result is None and response.result_ref.size == 9

    def test_failure(self) -> None:
        response = CommandResponse.failure(
            "cmd_1", "lse_1", "INVALID_PARAMS", "month is required", {"field": "month"}
        )
        assert not response.ok and response.error.details == {"field": "month"}

    @pytest.mark.parametrize(
        "data",
        [
            {"ok": True, "error": {"code": "X", "message": "m"}},
            {
                "ok": True,
                "result": 1,
                "result_ref": {"url": "https://b/x", "size": 1, "sha256": SHA},
            },
            {"ok": False},
            {"ok": False, "result": 1, "error": {"code": "X", "message": "m"}},
            {"ok": False, "error": {"code": "lowercase", "message": "m"}},
            {"ok": False, "error": {"code": "X", "message": ""}},
            {"ok": False, "error": {"code": "X", "message": "m", "details": {"d": "x" * 20_000}}},
            {"ok": True, "result": "x" * (MAX_INLINE_BYTES + 1)},
        ],
    )
    def test_inconsistent_responses_are_refused(self, data: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            parse(CommandResponse, {"command_id": "cmd_1", "lease_id": "lse_1", **data})


def test_inline_limit_counts_utf8_json_bytes() -> None:
    assert fits_inline({"s": "x" * (MAX_INLINE_BYTES - 10)})
    assert not fits_inline({"s": "é" * (MAX_INLINE_BYTES // 2)})


def test_error_codes_are_stable_upper_snake_case() -> None:
    assert "STALE_LEASE" in ERROR_CODES and "MAX_ATTEMPTS" in ERROR_CODES
    assert all(code.isupper() and " " not in code for code in ERROR_CODES)
