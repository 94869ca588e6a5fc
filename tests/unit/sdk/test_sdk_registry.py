"""The handler registry and the trigger decorators that fill it."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest

import alien
from alien.errors import ValidationError
from alien.sdk.registry import HandlerKind, HandlerRegistry, registry


def test_decorators_register_and_return_the_function_unchanged() -> None:
    @alien.on_queue_message("tasks")
    def on_task(message: object) -> str:
        return "handled"

    @alien.on_storage_event("uploads")
    async def on_upload(event: object) -> None: ...

    @alien.on_cron("nightly")
    def nightly(tick: object) -> None: ...

    assert on_task(None) == "handled"  # still an ordinary function
    assert registry.get(HandlerKind.QUEUE, "tasks").func is on_task
    assert registry.get(HandlerKind.STORAGE, "uploads").func is on_upload
    assert registry.get(HandlerKind.CRON, "nightly").func is nightly
    assert registry.get(HandlerKind.QUEUE, "uploads") is None
    assert [h.name for h in registry.of_kind(HandlerKind.QUEUE)] == ["tasks"]


def test_two_handlers_for_one_trigger_are_refused_naming_both() -> None:
    @alien.on_queue_message("tasks")
    def first(message: object) -> None: ...

    with pytest.raises(ValidationError, match=r"first.*second") as info:

        @alien.on_queue_message("tasks")
        def second(message: object) -> None: ...

    assert info.value.field == "tasks"


def test_registering_the_same_function_again_is_harmless() -> None:
    def handler(message: object) -> None: ...

    alien.on_cron("nightly")(handler)
    alien.on_cron("nightly")(handler)  # e.g. a module imported twice under two names
    assert registry.get(HandlerKind.CRON, "nightly").func is handler


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_decorator_needs_a_name(name: object) -> None:
    with pytest.raises(ValidationError):
        alien.on_queue_message(name)  # type: ignore[arg-type]


def onjob() -> None: ...


def test_a_handler_the_trigger_cannot_call_is_refused_at_decoration() -> None:
    """The runtime calls ``handler(message)``: ``onjob()`` would fail on every delivery."""
    with pytest.raises(ValidationError) as info:
        alien.on_queue_message("jobs")(onjob)
    assert info.value.message == (
        f"@alien.on_queue_message('jobs'): handler {__name__}.onjob takes (), but the trigger "
        "calls it with one positional argument, a QueueMessage (too many positional arguments); "
        "define it as def onjob(message: QueueMessage)"
    )
    assert "\n" not in info.value.message
    assert info.value.field == "jobs"
    assert registry.get(HandlerKind.QUEUE, "jobs") is None


@pytest.mark.parametrize(
    ("decorator", "payload"),
    [
        (alien.on_queue_message, "a QueueMessage"),
        (alien.on_storage_event, "a StorageEvent"),
        (alien.on_cron, "a CronTick"),
    ],
)
def test_every_trigger_kind_checks_the_call_shape(
    decorator: Callable[[str], Callable[[Any], Any]], payload: str
) -> None:
    async def two(first: object, second: object) -> None: ...

    with pytest.raises(ValidationError, match=rf"handler \S*two takes .*{payload}.*'second'"):
        decorator("x")(two)
    assert decorator("x")(lambda payload: None) is not None


class _Handler:
    def __call__(self, message: object) -> None: ...


class _AsyncHandler:
    async def __call__(self, message: object) -> None: ...


class _NoArgs:
    def __call__(self) -> None: ...


def _takes(prefix: str, message: object) -> None: ...


def _optional(message: object, retries: int = 3, *, verbose: bool = False) -> None: ...


def _star(*payload: object) -> None: ...


async def _needs_keyword(message: object, *, table: str) -> None: ...


def _kwargs_only(**payload: object) -> None: ...


@pytest.mark.parametrize(
    "handler",
    [
        _Handler(),
        _AsyncHandler(),
        functools.partial(_takes, "p"),
        _optional,
        _star,
        _Handler().__call__,
    ],
)
def test_any_callable_that_takes_the_payload_is_accepted(handler: Callable[..., Any]) -> None:
    assert alien.on_cron("nightly")(handler) is handler
    assert registry.get(HandlerKind.CRON, "nightly").func is handler


@pytest.mark.parametrize(
    ("handler", "named", "why"),
    [
        (_NoArgs(), f"{__name__}._NoArgs instance", "too many positional arguments"),
        (functools.partial(_takes, "p", None), f"partial({__name__}._takes)", "too many"),
        (_needs_keyword, f"{__name__}._needs_keyword", "missing a required argument: 'table'"),
        (_kwargs_only, f"{__name__}._kwargs_only", "too many positional arguments"),
    ],
)
def test_callables_that_cannot_take_the_payload_are_refused(
    handler: Callable[..., Any], named: str, why: str
) -> None:
    with pytest.raises(ValidationError) as info:
        alien.on_storage_event("uploads")(handler)
    assert f"handler {named} takes " in info.value.message
    assert why in info.value.message
    assert info.value.message.endswith("(event: StorageEvent)")
    assert registry.get(HandlerKind.STORAGE, "uploads") is None


def test_a_non_callable_handler_is_still_refused_as_such() -> None:
    with pytest.raises(ValidationError, match="is not callable"):
        alien.on_queue_message("jobs")("not a function")  # type: ignore[arg-type]


def test_serve_registers_the_app_and_returns_it() -> None:
    async def app(scope: object, receive: object, send: object) -> None: ...

    assert alien.serve(app) is app  # imported, not run as __main__: no server starts
    assert registry.app is app
    with pytest.raises(ValidationError, match="two different apps"):
        alien.serve(lambda *a: None)
    with pytest.raises(ValidationError, match="ASGI"):
        HandlerRegistry().set_app("not an app")


async def test_sync_handlers_run_in_a_worker_thread_async_ones_on_the_loop() -> None:
    seen: dict[str, object] = {}

    def sync_handler(payload: str) -> str:
        seen["sync"] = threading.current_thread()
        return payload.upper()

    async def async_handler(payload: str) -> str:
        seen["async"] = threading.current_thread()
        await asyncio.sleep(0)
        return payload * 2

    reg = HandlerRegistry()
    assert await reg.add(HandlerKind.QUEUE, "a", sync_handler).call("x") == "X"
    assert await reg.add(HandlerKind.QUEUE, "b", async_handler).call("x") == "xx"
    assert seen["async"] is threading.current_thread()
    assert seen["sync"] is not threading.current_thread()
