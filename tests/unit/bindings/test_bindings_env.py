"""ALIEN_BINDINGS parsing, the backend registry, and the errors app code sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alien.bindings.env import Bindings, from_environ, parse_binding, parse_bindings
from alien.bindings.local import LocalKv, LocalKvConfig, LocalQueueConfig
from alien.bindings.registry import lookup, register
from alien.errors import BindingError


def entries(tmp_path: Path) -> dict[str, dict[str, object]]:
    return {
        "cache": {"kind": "kv", "platform": "local", "path": str(tmp_path / "kv.db")},
        "tasks": {
            "kind": "queue",
            "platform": "local",
            "path": str(tmp_path / "q.db"),
            "visibility_timeout": 5,
        },
    }


def test_parse_typed_configs(tmp_path: Path) -> None:
    bindings = parse_bindings(json.dumps(entries(tmp_path)))
    assert sorted(bindings) == ["cache", "tasks"]
    tasks = bindings["tasks"]
    assert (tasks.id, tasks.kind, tasks.platform) == ("tasks", "queue", "local")
    assert isinstance(tasks.config, LocalQueueConfig)
    assert tasks.config.path == tmp_path / "q.db"
    assert tasks.config.visibility_timeout == 5
    backend = bindings.require("cache", "kv").open()
    assert isinstance(backend, LocalKv)
    backend.close()


def test_dumps_roundtrips(tmp_path: Path) -> None:
    bindings = parse_bindings(json.dumps(entries(tmp_path)))
    again = parse_bindings(bindings.dumps())
    assert {k: v.to_dict() for k, v in again.items()} == {
        k: v.to_dict() for k, v in bindings.items()
    }
    assert json.loads(bindings.dumps())["cache"] == {
        "kind": "kv",
        "platform": "local",
        "path": str(tmp_path / "kv.db"),
    }


@pytest.mark.parametrize("text", [None, "", "  "])
def test_unset_means_nothing_bound(text: str | None) -> None:
    assert len(parse_bindings(text)) == 0


def test_from_environ(tmp_path: Path) -> None:
    env = {"ALIEN_BINDINGS": json.dumps(entries(tmp_path))}
    assert sorted(from_environ(env)) == ["cache", "tasks"]
    assert len(from_environ({})) == 0


def test_not_linked_lists_what_is() -> None:
    bindings = parse_bindings(
        json.dumps(
            {
                "b": {"kind": "kv", "platform": "local", "path": "/tmp/x.db"},
                "a": {"kind": "kv", "platform": "local", "path": "/tmp/y.db"},
            }
        )
    )
    with pytest.raises(BindingError) as err:
        bindings.require("x", "kv")
    assert err.value.message == "resource 'x' is not linked to this function; linked: a, b"
    assert err.value.field == "name"
    with pytest.raises(BindingError, match="linked: none"):
        Bindings({}).require("x", "kv")  # the platform set ALIEN_BINDINGS, linking nothing
    with pytest.raises(BindingError, match="linked: none"):
        parse_bindings("{}").require("x", "kv")


@pytest.mark.parametrize("text", [None, "", "  "])
def test_unset_says_the_code_runs_outside_a_platform(text: str | None) -> None:
    with pytest.raises(BindingError) as err:
        parse_bindings(text).require("x", "storage")
    assert "ALIEN_BINDINGS is not set" in err.value.message
    assert "not running under an alien platform" in err.value.message
    assert "`alien dev`" in err.value.message
    assert "linked" not in err.value.message  # the stack's links are not the problem
    assert err.value.field == "name"
    with pytest.raises(BindingError, match="ALIEN_BINDINGS is not set"):
        from_environ({}).require("x", "kv")
    with pytest.raises(BindingError, match="ALIEN_BINDINGS is not set"):
        Bindings().require("x", "kv")


def test_wrong_kind() -> None:
    bindings = parse_bindings(
        json.dumps({"cache": {"kind": "kv", "platform": "local", "path": "/tmp/x.db"}})
    )
    with pytest.raises(BindingError, match="resource 'cache' is a kv, not a queue"):
        bindings.require("cache", "queue")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not JSON"),
        ("[1]", "expected a JSON object"),
        ('{"a": 1}', "resource 'a': expected an object"),
        ('{"a": {"kind": "kv"}}', "'kind' and 'platform' must be strings"),
        ('{"a": {"kind": "kv", "platform": "local"}}', "path: Field required"),
        ('{"a": {"kind": "kv", "platform": "local", "path": "rel.db"}}', "must be absolute"),
        (
            '{"a": {"kind": "kv", "platform": "local", "path": "/x", "extra": 1}}',
            "extra: Extra inputs are not permitted",
        ),
        (
            '{"a": {"kind": "queue", "platform": "local", "path": "/x", "visibility_timeout": -1}}',
            "visibility_timeout",
        ),
    ],
)
def test_malformed_environment(text: str, needle: str) -> None:
    with pytest.raises(BindingError) as err:
        parse_bindings(text)
    assert needle in err.value.message
    assert err.value.field == "ALIEN_BINDINGS"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"kind": "kv", "platform": "mars"}, "platform 'mars' has no resource backends"),
        ({"kind": "kv", "platform": "../evil"}, "invalid platform name"),
        ({"kind": "function", "platform": "local"}, "unknown resource kind 'function'"),
    ],
)
def test_unknown_platform_or_kind(entry: dict[str, str], needle: str) -> None:
    with pytest.raises(BindingError, match=needle):
        parse_binding("a", entry)


def test_registry_accepts_new_platforms(tmp_path: Path) -> None:
    register("unittestplatform", "kv", LocalKvConfig, lambda rid, cfg: LocalKv(cfg.path))
    assert lookup("unittestplatform", "kv").config_model is LocalKvConfig
    binding = parse_binding(
        "c", {"kind": "kv", "platform": "unittestplatform", "path": str(tmp_path / "k.db")}
    )
    with binding.open() as backend:
        backend.set("k", "v")
        assert backend.get("k") == b"v"
    with pytest.raises(ValueError, match="unknown resource kind"):
        register("unittestplatform", "function", LocalKvConfig, LocalKv)  # type: ignore[arg-type]
