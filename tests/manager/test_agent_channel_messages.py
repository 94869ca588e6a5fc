"""``alien.protocol.agent_channel``: message shapes, versioning, refusals (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import ValidationError
from alien.protocol.agent_channel import (
    AGENT_EVENT_TYPES,
    AgentPoll,
    DesiredRelease,
    Heartbeat,
    Hello,
    StatusReport,
    Welcome,
    encode,
    parse_agent_message,
    parse_manager_message,
)
from alien.protocol.deployment import DeploymentStatus

DIGEST = "sha256:" + "a" * 64


def test_agent_messages_round_trip() -> None:
    messages = [
        Hello(agent_version="a/1", platform="local", capabilities=("desired_release",)),
        Heartbeat(),
        StatusReport.model_validate(
            {"event": {"type": "deploy_started", "release": "rel_1"}, "detail": {"x": [1]}}
        ),
        StatusReport(detail={"ok": True}),
    ]
    for message in messages:
        text = encode(message)
        assert json.loads(text)["v"] == 1
        assert parse_agent_message(text) == message


def test_manager_messages_round_trip() -> None:
    messages = [
        Welcome(
            deployment_id="dep_abc",
            deployment_name="acme",
            group="prod",
            heartbeat_interval=15,
            status=DeploymentStatus(),
        ),
        DesiredRelease(
            release_id="rel_abc",
            manifest_digest=DIGEST,
            package_digest=DIGEST,
            package_size=3,
            package_url="/v1/releases/rel_abc/package",
            manifest={"name": "x"},
        ),
    ]
    for message in messages:
        assert parse_manager_message(encode(message)) == message
    poll = AgentPoll.model_validate_json(AgentPoll(messages=tuple(messages)).model_dump_json())
    assert poll.messages == tuple(messages)


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ("{", "VALIDATION_ERROR", "message"),
        ("[]", "VALIDATION_ERROR", "message"),
        ({"v": 1}, "VALIDATION_ERROR", "type"),
        ({"v": 1, "type": "welcome"}, "UNKNOWN_MESSAGE_TYPE", "type"),
        ({"type": "heartbeat"}, "UNSUPPORTED_PROTOCOL_VERSION", "v"),
        ({"v": True, "type": "heartbeat"}, "UNSUPPORTED_PROTOCOL_VERSION", "v"),
        ({"v": 2, "type": "heartbeat"}, "UNSUPPORTED_PROTOCOL_VERSION", "v"),
        ({"v": 1, "type": "heartbeat", "x": 1}, "VALIDATION_ERROR", "x"),
        ({"v": 1, "type": "hello", "agent_version": ""}, "VALIDATION_ERROR", "agent_version"),
        (
            {"v": 1, "type": "status", "event": {"type": "desired_release_set", "release": "r"}},
            "VALIDATION_ERROR",
            "event",
        ),
        ({"v": 1, "type": "status", "detail": {"big": "x" * 70_000}}, "VALIDATION_ERROR", "detail"),
    ],
)
def test_refusals_name_the_field(data: object, code: str, field: str) -> None:
    raw = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ValidationError) as err:
        parse_agent_message(raw)
    assert (err.value.code, err.value.field) == (code, field)


def test_agent_may_report_only_its_own_events() -> None:
    for kind in AGENT_EVENT_TYPES:
        assert kind not in {"desired_release_set", "retry_requested"}
    with pytest.raises(ValidationError):
        parse_manager_message({"v": 1, "type": "hello", "agent_version": "x"})


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["v", "type", "event", "detail", "x"]), inner, max_size=5
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_is_parsed_or_refused_cleanly(value: object) -> None:
    try:
        parse_agent_message(json.dumps(value))
    except ValidationError as exc:
        assert exc.field
