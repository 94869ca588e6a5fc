"""Property tests: builder stacks survive manifest round trips unchanged, and no input, however
hostile, makes the parser raise anything but ``StackError``."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alien
from alien.errors import StackError
from alien.stack import (
    Manifest,
    ResourceKind,
    StorageEvent,
    dump_manifest,
    manifest_from_dict,
    manifest_from_json,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(r"[a-z](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
cron_names = st.from_regex(r"[a-z](?:[a-z0-9_-]{0,8}[a-z0-9])?", fullmatch=True)
schedules = st.sampled_from(
    ["0 3 * * *", "*/5 * * * *", "* * * * * *", "*/10 * * * * 30", "0 9 * * MON-FRI", "15 0 1 * *"]
)
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not n.startswith("ALIEN_")
)
env_values = st.text(max_size=20).filter(lambda v: "\x00" not in v)
sources = st.sampled_from(["api", "./api", "src/worker/", ".", "a/b/c"])
entrypoints = st.sampled_from(["app:app", "pkg.main:app", "m:factory.app"])
lifecycles = st.sampled_from([alien.Lifecycle.FROZEN, alien.Lifecycle.LIVE, "frozen", "live"])

_BUILDERS = {
    ResourceKind.STORAGE: alien.Storage,
    ResourceKind.VAULT: alien.Vault,
    ResourceKind.KV: alien.Kv,
}


@st.composite
def stacks(draw: st.DrawFn) -> alien.Stack:
    names = draw(st.lists(ids, min_size=1, max_size=7, unique=True))
    kinds = {n: draw(st.sampled_from(list(ResourceKind))) for n in names}
    by_kind = {k: [n for n in names if kinds[n] == k] for k in ResourceKind}
    resources: list[alien.stack.Resource] = []
    for name in names:
        kind = kinds[name]
        if kind == ResourceKind.QUEUE:
            timeout = draw(st.none() | st.integers(min_value=1, max_value=43_200))
            resources.append(alien.Queue(name, visibility_timeout=timeout))
        elif kind == ResourceKind.FUNCTION:
            resources.append(draw(functions(name, by_kind)))
        else:
            resources.append(_BUILDERS[kind](name))
    stack = alien.Stack(draw(ids))
    for resource in draw(st.permutations(resources)):
        stack.add(resource, draw(lifecycles))
    return stack


@st.composite
def functions(draw: st.DrawFn, name: str, by_kind: dict[ResourceKind, list[str]]) -> alien.Function:
    fn = alien.Function(name).code(src=draw(sources), entrypoint=draw(entrypoints))
    bindable = [n for k in ResourceKind if k != ResourceKind.FUNCTION for n in by_kind[k]]
    for link in draw(st.lists(st.sampled_from(bindable), max_size=4)) if bindable else []:
        fn.link(link)
    for queue in (
        draw(st.lists(st.sampled_from(by_kind[ResourceKind.QUEUE]), unique=True))
        if (by_kind[ResourceKind.QUEUE])
        else []
    ):
        fn.on_queue(queue)
    storages = by_kind[ResourceKind.STORAGE]
    for storage in draw(st.lists(st.sampled_from(storages), unique=True)) if storages else []:
        events = draw(st.lists(st.sampled_from(list(StorageEvent)), min_size=1, max_size=3))
        fn.on_storage(storage, events=events)
    for cron in draw(st.lists(cron_names, unique=True, max_size=3)):
        fn.schedule(cron, draw(schedules))
    fn.env(draw(st.dictionaries(env_names, env_values, max_size=3)))
    fn.ingress(draw(st.sampled_from(["public", "private"])))
    fn.commands_enabled(draw(st.booleans()))
    return fn


@SETTINGS
@given(stacks())
def test_manifest_round_trip(stack: alien.Stack) -> None:
    data = stack.to_manifest()
    parsed = manifest_from_dict(data)
    assert parsed.to_dict() == data
    assert parsed == stack.validate()
    dumped = dump_manifest(data)
    assert json.loads(dumped) == data
    assert manifest_from_json(dumped) == parsed
    assert dump_manifest(parsed) == dumped
    assert [r["id"] for r in data["resources"]] == sorted(r["id"] for r in data["resources"])
    for fn in parsed.functions():
        assert fn.config.trigger_targets() <= set(fn.config.links)
        assert list(fn.config.links) == sorted(set(fn.config.links))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _parses_or_refuses(data: Any) -> None:
    try:
        result = manifest_from_dict(data)
    except StackError as exc:
        assert exc.message and "\n" not in exc.message
        assert exc.details.get("problems", [{}]) and exc.field
    else:
        assert isinstance(result, Manifest)


@SETTINGS
@given(json_values)
def test_arbitrary_json_never_crashes_the_parser(data: Any) -> None:
    _parses_or_refuses(data)


@SETTINGS
@given(stacks(), st.data())
def test_mutated_manifests_never_crash_the_parser(stack: alien.Stack, data: st.DataObject) -> None:
    manifest = copy.deepcopy(stack.to_manifest())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(manifest)[1:]))
        parent = manifest
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(json_values)
    _parses_or_refuses(manifest)
