"""Matching configured triggers with registered handlers, and opening what they consume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alien.bindings.env import Bindings, parse_bindings
from alien.errors import BindingError, ValidationError
from alien.sdk.registry import HandlerKind, HandlerRegistry
from alien.sdk.runtime.config import CronTrigger, QueueTrigger, StorageTrigger
from alien.sdk.runtime.loops import CronLoop, QueueConsumer
from alien.sdk.runtime.wiring import build_loops


def _bindings(tmp_path: Path, *, events: bool) -> Bindings:
    storage = {"kind": "storage", "platform": "local", "path": str(tmp_path / "bucket")}
    if events:
        storage["events"] = str(tmp_path / "events.db")
    queue = {"kind": "queue", "platform": "local", "path": str(tmp_path / "q.db")}
    return parse_bindings(json.dumps({"data": storage, "tasks": queue}))


def _registry() -> HandlerRegistry:
    reg = HandlerRegistry()
    reg.add(HandlerKind.QUEUE, "tasks", lambda m: None)
    reg.add(HandlerKind.STORAGE, "data", lambda e: None)
    reg.add(HandlerKind.CRON, "nightly", lambda t: None)
    return reg


TRIGGERS = (
    QueueTrigger(type="queue", queue="tasks"),
    StorageTrigger(type="storage", storage="data"),
    CronTrigger(type="cron", name="nightly", schedule="0 3 * * *"),
)


def test_one_loop_per_trigger(tmp_path: Path) -> None:
    loops = build_loops("api", TRIGGERS, _registry(), _bindings(tmp_path, events=True))
    assert [type(loop) for loop in loops] == [QueueConsumer, QueueConsumer, CronLoop]
    assert [getattr(loop, "label", None) for loop in loops[:2]] == ["queue tasks", "storage data"]


def test_a_trigger_without_a_handler_fails_with_the_decorator_to_add(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="without a handler") as info:
        build_loops("api", TRIGGERS, HandlerRegistry(), _bindings(tmp_path, events=True))
    for fix in ("on_queue_message('tasks')", "on_storage_event('data')", "on_cron('nightly')"):
        assert f"@alien.{fix}" in info.value.message


def test_a_handler_without_a_trigger_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="alien.runtime"):
        loops = build_loops("api", TRIGGERS[:1], _registry(), _bindings(tmp_path, events=True))
    assert len(loops) == 1
    assert "'nightly' never runs" in caplog.text and "'data' never runs" in caplog.text


def test_a_storage_trigger_needs_the_platform_to_enable_events(tmp_path: Path) -> None:
    with pytest.raises(BindingError, match="no events queue"):
        build_loops("api", TRIGGERS, _registry(), _bindings(tmp_path, events=False))


def test_a_trigger_on_an_unlinked_resource_is_a_binding_error(tmp_path: Path) -> None:
    trigger = QueueTrigger(type="queue", queue="other")
    reg = HandlerRegistry()
    reg.add(HandlerKind.QUEUE, "other", lambda m: None)
    with pytest.raises(BindingError, match="not linked"):
        build_loops("api", (trigger,), reg, _bindings(tmp_path, events=False))
