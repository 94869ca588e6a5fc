"""boto3's data for the first debug session is loaded ahead of time, once per process: by the
manager (push model) and by an agent with AWS debugging configured (pull model)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from alien.agent.debug import DebugTunnels
from alien.agent.debug_config import config_path
from alien.platforms.aws import credentials, preload


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == preload.THREAD_NAME]


@pytest.fixture
def unprepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has not loaded the data yet (whatever earlier tests did)."""
    monkeypatch.setattr(preload, "_prepared", threading.Event())


def test_preparing_loads_the_sts_model_once_in_a_thread_of_its_own(unprepared: None) -> None:
    preload.prepare_in_background()
    preload.prepare_in_background()  # while the first runs: no second thread
    workers = _workers()
    assert len(workers) <= 1
    assert preload.prepared(timeout=60)
    for worker in workers:
        worker.join(timeout=10)
    session = credentials._shared_session
    assert session is not None
    assert "sts" in session.get_available_services()
    preload.prepare_in_background()  # done already: nothing starts
    assert not _workers()


def _tunnels(root: Path, config: dict[str, object] | None) -> DebugTunnels:
    if config is not None:
        config_path(root).write_text(json.dumps(config))
    return DebugTunnels("http://127.0.0.1:1", "ax_dt_unused", root)


def test_an_agent_with_aws_debugging_prepares_at_start(unprepared: None, tmp_path: Path) -> None:
    _tunnels(tmp_path, {"aws": {"region": "eu-west-1", "allowed_services": ["s3"]}}).prepare()
    assert preload.prepared(timeout=60)


@pytest.mark.parametrize(
    "config",
    [None, {"http": {"allow": ["127.0.0.1:8080"]}}, {"aws": "not an object"}],
    ids=["no debug.json", "http only", "unreadable"],
)
def test_an_agent_without_aws_debugging_loads_nothing(
    unprepared: None, tmp_path: Path, config: dict[str, object] | None
) -> None:
    _tunnels(tmp_path, config).prepare()
    for worker in _workers():
        worker.join(timeout=10)
    assert not preload.prepared(timeout=0)


def test_a_wrong_debug_json_is_reported_when_the_agent_starts(
    unprepared: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tunnels = _tunnels(tmp_path, {"gcp": {"project": "p", "allowed_apis": []}})
    with caplog.at_level("WARNING", logger="alien.agent.debug"):
        tunnels.prepare()
        for worker in _workers():
            worker.join(timeout=10)
    [warning] = [
        r.getMessage() for r in caplog.records if "debug sessions will fail" in r.getMessage()
    ]
    assert "gcp.allowed_apis" in warning and "alien-deploy debug" in warning
