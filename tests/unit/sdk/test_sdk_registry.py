"""The handler registry and the trigger decorators that fill it."""

from __future__ import annotations

import asyncio
import threading

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
