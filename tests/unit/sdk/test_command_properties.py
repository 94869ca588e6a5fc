"""Property: whatever JSON params arrive, ``run_command`` answers with a ``CommandResponse``.

Params are untrusted input from the control plane; no object of them may crash the runtime.
Handlers cover the binding shapes (typed, optional, ``**kwargs``, context, none at all) and both
execution paths (async on the loop, sync in a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alien
from alien.protocol.command_messages import INVALID_PARAMS, CommandResponse
from alien.sdk.command_context import CommandContext
from alien.sdk.commands import run_command

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=[]), max_size=20)  # lone surrogates included
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["count", "tags", "when", "ctx", "note", ""]) | st.text(max_size=10)
params_objects = st.dictionaries(keys, json_values, max_size=5)


async def typed(
    count: int,
    ctx: alien.CommandContext,
    tags: list[str] | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    return {"count": count, "tags": tags, "when": when, "attempt": ctx.attempt}


async def echo(**params: Any) -> dict[str, Any]:
    return params


async def nothing() -> None:
    return None


def sync_typed(count: int, note: str = "") -> list[Any]:
    return [count, note]


HANDLERS = {"typed": typed, "echo": echo, "nothing": nothing, "sync-typed": sync_typed}


def register_handlers() -> None:
    """Idempotent (same functions): the registry is cleared once per test, not per example."""
    for name, func in HANDLERS.items():
        alien.command(name)(func)


def new_context() -> CommandContext:
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    return CommandContext(command_id="cmd_prop", lease_id="lse_prop", deadline=deadline)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(HANDLERS)), params=params_objects)
def test_any_json_params_object_gives_a_response(
    loop: asyncio.AbstractEventLoop, name: str, params: dict[str, Any]
) -> None:
    register_handlers()
    response = loop.run_until_complete(run_command(name, params, new_context()))
    assert isinstance(response, CommandResponse)
    assert response.command_id == "cmd_prop"
    if not response.ok:
        assert response.error is not None
        assert response.error.code == INVALID_PARAMS, response.error
    elif name == "echo":
        assert response.result == params


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=json_values.filter(lambda value: not isinstance(value, dict)))
def test_any_non_object_params_are_invalid_params(
    loop: asyncio.AbstractEventLoop, params: Any
) -> None:
    register_handlers()
    response = loop.run_until_complete(run_command("echo", params, new_context()))
    assert not response.ok and response.error is not None
    assert response.error.code == INVALID_PARAMS
