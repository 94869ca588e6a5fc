"""The manifest contract: the exact JSON of docs/ARCHITECTURE.md, canonical bytes, digests,
look-ups, and parsing hostile input into field-named errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import alien
from alien.errors import NotFound, StackError
from alien.stack import (
    FunctionSpec,
    QueueSpec,
    dump_manifest,
    manifest_digest,
    manifest_from_dict,
    manifest_from_json,
)

ARCHITECTURE = Path(__file__).parents[3] / "docs" / "ARCHITECTURE.md"


def documented_manifest() -> dict[str, Any]:
    """The example manifest in docs/ARCHITECTURE.md (the first ```json block)."""
    text = ARCHITECTURE.read_text()
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md lost its manifest example"
    return json.loads(block.group(1))


def api_of(doc: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in doc["resources"] if r["id"] == "api")


def test_builder_produces_the_documented_manifest(stack: alien.Stack) -> None:
    assert stack.to_manifest() == documented_manifest()


def test_documented_manifest_is_canonical() -> None:
    doc = documented_manifest()
    assert manifest_from_dict(doc).to_dict() == doc


def test_dump_is_compact_sorted_and_newline_terminated(stack: alien.Stack) -> None:
    data = stack.to_manifest()
    dumped = dump_manifest(data)
    assert dumped.endswith(b"}\n")
    assert b": " not in dumped and b", " not in dumped
    assert dumped == json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    assert dump_manifest(manifest_from_json(dumped)) == dumped


def test_order_of_definition_does_not_change_the_bytes() -> None:
    def build(reverse: bool) -> alien.Stack:
        q, s, k = alien.Queue("q"), alien.Storage("s"), alien.Kv("k")
        fn = alien.Function("fn").code("fn", "app:app")
        calls = [
            lambda: fn.schedule("b", "0 * * * *"),
            lambda: fn.schedule("a", "1 * * * *"),
            lambda: fn.on_storage(s, events=["delete", "put"]),
            lambda: fn.on_queue(q),
            lambda: fn.link(k),
            lambda: fn.env({"B": "2"}),
            lambda: fn.env({"A": "1"}),
        ]
        for call in reversed(calls) if reverse else calls:
            call()
        entries = [(fn, "live"), (q, "live"), (s, "frozen"), (k, "live")]
        st = alien.Stack("st")
        for resource, lifecycle in reversed(entries) if reverse else entries:
            st.add(resource, lifecycle)
        return st

    assert dump_manifest(build(False).to_manifest()) == dump_manifest(build(True).to_manifest())


def test_digest(stack: alien.Stack) -> None:
    digest = manifest_digest(stack.to_manifest())
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest == manifest_digest(stack.validate())
    other = alien.Stack("my-app").add(alien.Storage("data"), "live")
    assert manifest_digest(other.to_manifest()) != digest


def test_non_ascii_env_values_dump_as_ascii_escapes() -> None:
    st = alien.Stack("s").add(
        alien.Function("f").code("f", "m:a").env({"GREETING": "grüß \ud800 dich"}), "live"
    )
    dumped = dump_manifest(st.to_manifest())
    assert dumped.isascii()
    assert manifest_from_json(dumped).function("f").config.env["GREETING"] == "grüß \ud800 dich"


def test_lookups(stack: alien.Stack) -> None:
    manifest = stack.validate()
    assert [f.id for f in manifest.functions()] == ["api"]
    assert isinstance(manifest.function("api"), FunctionSpec)
    assert isinstance(manifest.resource("tasks"), QueueSpec)
    assert [r.id for r in manifest.of_kind("storage")] == ["data"]
    assert [(r.id, r.kind) for r in manifest.bindings("api")] == [
        ("cache", "kv"),
        ("credentials", "vault"),
        ("data", "storage"),
        ("tasks", "queue"),
    ]
    with pytest.raises(NotFound) as caught:
        manifest.resource("nope")
    assert caught.value.field == "resource"
    with pytest.raises(NotFound, match="is a queue, not a function"):
        manifest.function("tasks")


def test_trigger_targets_are_bound_even_when_a_manifest_omits_the_link() -> None:
    doc = documented_manifest()
    api_of(doc)["config"]["links"] = []
    manifest = manifest_from_dict(doc)
    assert manifest.function("api").config.links == ("data", "tasks")


def test_defaults_are_written_out() -> None:
    st = alien.Stack("s").add(alien.Function("f").code("f", "m:a"), "live")
    st.add(alien.Queue("q"), "frozen")
    resources = {r["id"]: r for r in st.to_manifest()["resources"]}
    assert resources["f"]["config"] == {
        "code": {"src": "f", "entrypoint": "m:a"},
        "links": [],
        "ingress": "private",
        "commands_enabled": False,
        "env": {},
        "triggers": [],
    }
    assert resources["q"]["config"] == {"visibility_timeout": 30}


# --- hostile input ---------------------------------------------------------------------------


def _problems(data: Any) -> dict[str, str]:
    with pytest.raises(StackError) as caught:
        manifest_from_dict(data)
    assert caught.value.code == "INVALID_STACK" and caught.value.status == 422
    listed = caught.value.details.get("problems")
    if listed is None:
        return {str(caught.value.field): caught.value.message}
    return {p["field"]: p["message"] for p in listed}


def test_not_an_object() -> None:
    for data in ([], "x", None, 3):
        assert _problems(data) == {"manifest": "a manifest must be a JSON object"}


def test_envelope_problems() -> None:
    problems = _problems({"manifest_version": 2, "name": 5, "resources": {}, "extra": 1})
    assert set(problems) == {"manifest_version", "name", "resources", "extra"}
    assert "reads manifest_version 1" in problems["manifest_version"]
    assert "unknown field" in problems["extra"]


def test_resource_problems_are_named_by_id_or_index() -> None:
    doc = documented_manifest()
    doc["resources"] += [
        {"id": "Bad", "kind": "storage", "lifecycle": "frozen"},
        {"id": "x", "kind": "bucket", "lifecycle": "frozen"},
        {"kind": "kv", "lifecycle": "live"},
        "not-an-object",
        {"id": "q2", "kind": "queue", "lifecycle": "live", "config": {"visibility_timeout": "30"}},
    ]
    api_of(doc)["config"]["triggers"][2]["schedule"] = "bad"
    api_of(doc)["config"]["env"] = {"ALIEN_PORT": "1", "OK": 1}
    api_of(doc)["config"]["surprise"] = True
    problems = _problems(doc)
    assert set(problems) == {
        "resources[5].id",
        "resources.x.kind",
        "resources[7].id",
        "resources[8]",
        "resources.q2.visibility_timeout",
        "resources.api.triggers[2].schedule",
        "resources.api.env.ALIEN_PORT",
        "resources.api.env.OK",
        "resources.api.surprise",
    }
    assert "storage, vault, kv, queue or function" in problems["resources.x.kind"]
    assert problems["resources[7].id"] == "this field is required"


def test_strict_types() -> None:
    doc = documented_manifest()
    api_of(doc)["config"]["commands_enabled"] = "yes"
    api_of(doc)["config"]["links"] = "data"
    problems = _problems(doc)
    assert set(problems) == {"resources.api.commands_enabled", "resources.api.links"}


def test_references_are_checked_across_resources() -> None:
    doc = documented_manifest()
    api = api_of(doc)["config"]
    api["links"] += ["ghost", "api"]
    api["triggers"] += [{"type": "queue", "queue": "data"}, {"type": "storage", "storage": "nope"}]
    doc["resources"].append({"id": "data", "kind": "kv", "lifecycle": "live"})
    problems = _problems(doc)
    assert problems["resources.data"] == "2 resources have id 'data': ids must be unique in a stack"
    with pytest.raises(StackError) as caught:
        manifest_from_dict(doc)
    messages = [p["message"] for p in caught.value.details["problems"]]
    assert any("link to 'ghost', which is not in the stack" in m for m in messages)
    assert any("link to 'api', which is a function" in m for m in messages)
    assert any("storage trigger names 'nope', which is not in the stack" in m for m in messages)


def test_duplicate_triggers_refused() -> None:
    doc = documented_manifest()
    api_of(doc)["config"]["triggers"].append(
        {"type": "cron", "name": "nightly", "schedule": "* * * * *"}
    )
    assert _problems(doc) == {
        "resources.api.triggers": "more than one cron trigger named 'nightly': keep one"
    }


def test_storage_trigger_events() -> None:
    doc = documented_manifest()
    api_of(doc)["config"]["triggers"][1]["events"] = []
    assert "at least one of: put, delete" in _problems(doc)["resources.api.triggers[1].events"]
    api_of(doc)["config"]["triggers"][1]["events"] = ["put", "copy"]
    assert "resources.api.triggers[1].events[1]" in _problems(doc)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON|not UTF-8"),
        (b'{"name": "a", "name": "b"}', "the key 'name' twice"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
    ],
)
def test_bad_json(text: bytes, reason: str) -> None:
    with pytest.raises(StackError, match=reason) as caught:
        manifest_from_json(text)
    assert caught.value.field == "manifest"


def test_many_problems_make_one_line_message() -> None:
    doc = {"manifest_version": 1, "name": "s", "resources": [{"id": f"R{i}"} for i in range(9)]}
    with pytest.raises(StackError) as caught:
        manifest_from_dict(doc)
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("stack 's' has ")
    assert caught.value.message.endswith("more")
    problems = caught.value.details["problems"]
    assert [p["field"] for p in problems] == [f"resources[{i}].kind" for i in range(9)]
