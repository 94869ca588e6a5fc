"""The runtime's environment contract: parsed and validated before any app code runs."""

from __future__ import annotations

import json

import pytest

from alien.errors import ValidationError
from alien.sdk.runtime.config import CronTrigger, QueueTrigger, RuntimeConfig, StorageTrigger

BASE = {"ALIEN_FUNCTION": "api", "ALIEN_ENTRYPOINT": "app:app"}


def test_a_full_environment_is_parsed() -> None:
    triggers = [
        {"type": "queue", "queue": "tasks"},
        {"type": "storage", "storage": "data", "events": ["put"]},
        {"type": "cron", "name": "nightly", "schedule": "0 3 * * *", "future_field": 1},
    ]
    config = RuntimeConfig.from_environ(
        BASE
        | {
            "ALIEN_TRIGGERS": json.dumps(triggers),
            "ALIEN_HOST": "127.0.0.2",
            "ALIEN_PORT": "8123",
            "ALIEN_COMMANDS_ENABLED": "1",
        }
    )
    assert config.function == "api" and config.entrypoint == "app:app"
    assert config.host == "127.0.0.2" and config.port == 8123 and config.commands_enabled
    queue, storage, cron = config.triggers
    assert isinstance(queue, QueueTrigger) and queue.label == "queue:tasks"
    assert isinstance(storage, StorageTrigger) and storage.events == frozenset({"put"})
    assert isinstance(cron, CronTrigger) and cron.schedule == "0 3 * * *"


def test_defaults_serve_on_a_free_loopback_port_with_no_triggers() -> None:
    config = RuntimeConfig.from_environ(BASE)
    assert (config.host, config.port, config.triggers, config.commands_enabled) == (
        "127.0.0.1",
        0,
        (),
        False,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ALIEN_FUNCTION": ""}, "ALIEN_FUNCTION"),
        ({"ALIEN_ENTRYPOINT": "app"}, "ALIEN_ENTRYPOINT"),
        ({"ALIEN_ENTRYPOINT": ":app"}, "ALIEN_ENTRYPOINT"),
        ({"ALIEN_PORT": "http"}, "ALIEN_PORT"),
        ({"ALIEN_PORT": "70000"}, "ALIEN_PORT"),
        ({"ALIEN_TRIGGERS": "[{"}, "ALIEN_TRIGGERS"),
        ({"ALIEN_TRIGGERS": '[{"type": "queue"}]'}, "ALIEN_TRIGGERS"),
        ({"ALIEN_TRIGGERS": '[{"type": "webhook"}]'}, "ALIEN_TRIGGERS"),
    ],
)
def test_bad_values_name_the_variable(change: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RuntimeConfig.from_environ(BASE | change)
    assert info.value.field == field
    assert field in info.value.message


def test_the_platform_s_http_endpoint_comes_with_its_token_kept_out_of_repr() -> None:
    token = "h" * 40
    config = RuntimeConfig.from_environ(
        BASE | {"ALIEN_HTTP_ADDRESS": "unix:/run/a/http-1.sock", "ALIEN_HTTP_TOKEN": token}
    )
    assert config.http is not None and str(config.http.address) == "unix:/run/a/http-1.sock"
    assert config.http.token == token and token not in repr(config)
    assert RuntimeConfig.from_environ(BASE).http is None  # ALIEN_HOST/ALIEN_PORT then
    for change, field in [
        ({"ALIEN_HTTP_ADDRESS": "unix:/a.sock"}, "ALIEN_HTTP_TOKEN"),  # never without its token
        ({"ALIEN_HTTP_ADDRESS": "unix:/a.sock", "ALIEN_HTTP_TOKEN": "short"}, "ALIEN_HTTP_TOKEN"),
        ({"ALIEN_HTTP_ADDRESS": "tcp:0.0.0.0:80", "ALIEN_HTTP_TOKEN": token}, "ALIEN_HTTP_ADDRESS"),
    ]:
        with pytest.raises(ValidationError) as info:
            RuntimeConfig.from_environ(BASE | change)
        assert info.value.field == field and "short" not in info.value.message
