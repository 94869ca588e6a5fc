"""``run_command``: lookup, params binding, execution, deadline, cancellation, results, failures."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import alien
from alien.errors import NotFound, ValidationError
from alien.protocol.command_messages import (
    COMMAND_CANCELLED,
    HANDLER_ERROR,
    HANDLER_TIMEOUT,
    INVALID_PARAMS,
    MAX_INLINE_BYTES,
    UNKNOWN_COMMAND,
    BlobRef,
    CommandResponse,
)
from alien.sdk.command_context import CommandContext
from alien.sdk.command_failures import failure
from alien.sdk.command_params import MAX_PROBLEMS
from alien.sdk.command_results import BINARY_KEY, decode_result
from alien.sdk.commands import run_command

WAIT = 5.0
"""Upper bound for waiting on an event that must happen; tests pass far sooner."""


def new_context(seconds: float = 30.0) -> CommandContext:
    return CommandContext(
        command_id="cmd_test",
        lease_id="lse_test",
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
        attempt=2,
        max_attempts=3,
    )


async def run(name: str, params: Any = None, **options: Any) -> CommandResponse:
    ctx = options.pop("context", None) or new_context()
    response = await run_command(name, {} if params is None else params, ctx, **options)
    assert (response.command_id, response.lease_id) == (ctx.command_id, ctx.lease_id)
    return response


def error_of(response: CommandResponse) -> tuple[str, str, dict[str, Any]]:
    assert not response.ok and response.error is not None
    return response.error.code, response.error.message, response.error.details


# --- lookup ---------------------------------------------------------------------------------


async def test_unknown_command_lists_the_known_ones_sorted() -> None:
    for name in ["zeta", "alpha", "mid"]:
        alien.command(name)(lambda: None)
    code, message, details = error_of(await run("nope"))
    assert code == UNKNOWN_COMMAND
    assert message == "unknown command 'nope'; known commands: alpha, mid, zeta"
    assert details == {"known": ["alpha", "mid", "zeta"]}


async def test_unknown_command_when_none_are_registered() -> None:
    code, message, details = error_of(await run("x"))
    assert (code, details) == (UNKNOWN_COMMAND, {"known": []})
    assert "none are registered" in message


@pytest.mark.parametrize("name", ["Export", "", "x" * 5000, None, 42])
async def test_invalid_names_are_unknown_commands(name: Any) -> None:
    code, message, _ = error_of(await run(name))
    assert code == UNKNOWN_COMMAND
    assert len(message) < 300


# --- params ---------------------------------------------------------------------------------


async def test_params_arrive_as_keyword_arguments_with_defaults_kept() -> None:
    @alien.command("generate-report")
    async def generate_report(
        start_date: str, end_date: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        return {"start": start_date, "end": end_date, "limit": limit}

    response = await run("generate-report", {"start_date": "2030-01-01"})
    assert response.ok
    assert response.result == {"start": "2030-01-01", "end": None, "limit": 10}
    response = await run("generate-report", {"start_date": "a", "end_date": "b", "limit": 3})
    assert response.result == {"start": "a", "end": "b", "limit": 3}


async def test_missing_required_parameter_is_invalid_params() -> None:
    @alien.command("generate-report")
    def generate_report(start_date: str, end_date: str | None = None) -> None: ...

    code, message, details = error_of(await run("generate-report", {"end_date": "x"}))
    assert code == INVALID_PARAMS
    assert message == "generate-report: missing required parameter 'start_date'"
    assert details["field"] == "start_date"


async def test_unexpected_parameter_is_invalid_params_naming_it() -> None:
    @alien.command("export")
    def export(table: str) -> None: ...

    code, message, details = error_of(await run("export", {"table": "t", "tabel": "t"}))
    assert code == INVALID_PARAMS
    assert message == "export: unexpected parameter 'tabel' (the handler takes: table)"
    assert details["field"] == "tabel"


async def test_every_problem_is_listed() -> None:
    @alien.command("export")
    def export(table: str, limit: int) -> None: ...

    _, _, details = error_of(await run("export", {"limit": "5", "x": 1}))
    assert [p["field"] for p in details["problems"]] == ["table", "limit", "x"]


async def test_kwargs_handler_accepts_any_other_parameter() -> None:
    @alien.command("echo")
    def echo(first: int, **rest: Any) -> dict[str, Any]:
        return {"first": first, "rest": rest}

    params = {"first": 1, "p0": "not a field", "nested": {"a": [1, None]}}
    response = await run("echo", params)
    assert response.result == {
        "first": 1,
        "rest": {"p0": "not a field", "nested": {"a": [1, None]}},
    }


async def test_a_pass_through_wrapper_gets_the_params_as_kwargs() -> None:
    @alien.command("wrapped")
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    response = await run("wrapped", {"a": 1})
    assert response.result == {"args": [], "kwargs": {"a": 1}}


@pytest.mark.parametrize(
    ("params", "kind"),
    [([1], "an array"), ("x", "a string"), (None, "null"), (3, "a number"), (True, "a boolean")],
)
async def test_params_that_are_not_an_object_are_invalid(params: Any, kind: str) -> None:
    @alien.command("export")
    def export(**anything: Any) -> None: ...

    ctx = new_context()
    code, message, details = error_of(await run_command("export", params, ctx))
    assert code == INVALID_PARAMS
    assert message == f"export: params must be a JSON object, not {kind}"
    assert details["field"] == "params"


@pytest.mark.parametrize(
    "params", [{1: "x"}, {"a": float("nan")}, {"a": {1, 2}}, {"a": "\ud800"}, {"a": object()}]
)
async def test_params_that_are_not_json_are_invalid(params: dict[Any, Any]) -> None:
    @alien.command("export")
    def export(**anything: Any) -> None: ...

    code, _, details = error_of(await run("export", params))
    assert (code, details["field"]) == (INVALID_PARAMS, "params")


async def test_annotations_are_validated_strictly_as_json() -> None:
    @alien.command("typed")
    def typed(count: int, ratio: float, tags: list[str], when: datetime | None = None) -> Any:
        return {"count": count, "ratio": ratio, "tags": tags, "year": when and when.year}

    ok = await run("typed", {"count": 5, "ratio": 1, "tags": ["a"], "when": "2031-02-03T00:00:00Z"})
    assert ok.result == {"count": 5, "ratio": 1.0, "tags": ["a"], "year": 2031}
    for bad, field in [
        ({"count": "5", "ratio": 1.5, "tags": []}, "count"),
        ({"count": True, "ratio": 1.5, "tags": []}, "count"),
        ({"count": 5, "ratio": "1.5", "tags": []}, "ratio"),
        ({"count": 5, "ratio": 1.5, "tags": ["a", 2]}, "tags.1"),
        ({"count": 5, "ratio": 1.5, "tags": [], "when": "yesterday"}, "when"),
    ]:
        code, message, details = error_of(await run("typed", bad))
        assert (code, details["field"]) == (INVALID_PARAMS, field), message
        assert message.startswith(f"typed: parameter {field!r}: ")


async def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    @alien.command("odd-names")
    def odd_names(json: str, model_config: int, _private: bool = False) -> list[Any]:
        return [json, model_config, _private]

    response = await run("odd-names", {"json": "j", "model_config": 1, "_private": True})
    assert response.result == ["j", 1, True]


async def test_the_handler_gets_a_private_copy_of_extra_params() -> None:
    @alien.command("mutate")
    def mutate(**params: Any) -> None:
        params["items"].append("added")

    params = {"items": ["original"]}
    assert (await run("mutate", params)).ok
    assert params == {"items": ["original"]}


# --- context injection ----------------------------------------------------------------------


async def test_the_context_is_injected_by_annotation_under_any_name() -> None:
    seen: list[CommandContext] = []

    @alien.command("sync-ctx")
    def sync_ctx(table: str, delivery: alien.CommandContext) -> int:
        seen.append(delivery)
        return delivery.attempt

    @alien.command("async-ctx")
    async def async_ctx(c: CommandContext) -> str:
        seen.append(c)
        return c.command_id

    ctx = new_context()
    assert (await run_command("sync-ctx", {"table": "t"}, ctx)).result == 2
    assert (await run_command("async-ctx", {}, ctx)).result == "cmd_test"
    assert seen == [ctx, ctx]


async def test_the_context_cannot_be_passed_as_a_param() -> None:
    @alien.command("export")
    def export(ctx: alien.CommandContext, **rest: Any) -> None: ...

    code, message, details = error_of(await run("export", {"ctx": 1}))
    assert (code, details["field"]) == (INVALID_PARAMS, "ctx")
    assert "is the command context" in message


# --- execution ------------------------------------------------------------------------------


async def test_sync_handlers_run_in_a_worker_thread_and_keep_the_loop_free() -> None:
    release = threading.Event()
    loop_ran_meanwhile = asyncio.Event()

    @alien.command("blocking")
    def blocking() -> str:
        assert release.wait(WAIT), "the event loop never got to run while the handler blocked"
        return threading.current_thread().name

    async def meanwhile() -> None:
        loop_ran_meanwhile.set()
        release.set()

    response, _ = await asyncio.gather(run("blocking"), meanwhile())
    assert response.result == "alien-command-blocking"
    assert loop_ran_meanwhile.is_set()


async def test_async_handlers_run_on_the_loop() -> None:
    @alien.command("on-loop")
    async def on_loop() -> bool:
        return threading.current_thread() is threading.main_thread()

    assert (await run("on-loop")).result is True


async def test_async_callable_objects_and_callables_returning_coroutines() -> None:
    class Handler:
        async def __call__(self, n: int) -> int:
            return n + 1

    def returns_coroutine(n: int) -> Any:
        async def later() -> int:
            return n * 2

        return later()

    alien.command("obj")(Handler())
    alien.command("coro")(returns_coroutine)
    assert (await run("obj", {"n": 1})).result == 2
    assert (await run("coro", {"n": 4})).result == 8


# --- deadline -------------------------------------------------------------------------------


async def test_an_async_handler_past_the_deadline_is_cancelled() -> None:
    unwound = asyncio.Event()

    @alien.command("slow")
    async def slow(ctx: alien.CommandContext) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    ctx = new_context(seconds=0.2)
    code, message, _ = error_of(await run("slow", context=ctx))
    assert (code, message) == (HANDLER_TIMEOUT, "the command's deadline passed")
    assert unwound.is_set()
    assert ctx.cancel_code == HANDLER_TIMEOUT


async def test_a_sync_handler_past_the_deadline_sees_the_flag_and_its_result_is_dropped() -> None:
    finished = threading.Event()
    saw: list[str | None] = []

    @alien.command("slow")
    def slow(ctx: alien.CommandContext) -> str:
        ctx.wait_cancelled_blocking(WAIT)
        saw.append(ctx.cancel_code)
        finished.set()
        return "too late"

    code, _, _ = error_of(await run("slow", context=new_context(seconds=0.2)))
    assert code == HANDLER_TIMEOUT
    assert await asyncio.to_thread(finished.wait, WAIT)
    assert saw == [HANDLER_TIMEOUT]


async def test_a_deadline_already_passed_does_not_start_the_handler() -> None:
    calls: list[int] = []
    alien.command("never")(lambda: calls.append(1))
    code, message, _ = error_of(await run("never", context=new_context(seconds=-1)))
    assert code == HANDLER_TIMEOUT and "before the handler started" in message
    assert calls == []


# --- cancellation ---------------------------------------------------------------------------


async def test_cancelling_an_async_handler_cancels_its_task() -> None:
    started, unwound = asyncio.Event(), asyncio.Event()

    @alien.command("long")
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    ctx = new_context()
    running = asyncio.create_task(run("long", context=ctx))
    await asyncio.wait_for(started.wait(), WAIT)
    ctx.cancel("operator cancelled it")
    code, message, _ = error_of(await asyncio.wait_for(running, WAIT))
    assert (code, message) == (COMMAND_CANCELLED, "operator cancelled it")
    assert unwound.is_set()


async def test_cancelling_a_sync_handler_sets_its_flag_and_discards_its_result() -> None:
    started, finished = threading.Event(), threading.Event()

    @alien.command("long")
    def long(ctx: alien.CommandContext) -> str:
        started.set()
        ctx.wait_cancelled_blocking(WAIT)
        finished.set()
        return "ignored"

    ctx = new_context()
    running = asyncio.create_task(run("long", context=ctx))
    assert await asyncio.to_thread(started.wait, WAIT)
    ctx.cancel()
    code, _, _ = error_of(await asyncio.wait_for(running, WAIT))
    assert code == COMMAND_CANCELLED
    assert await asyncio.to_thread(finished.wait, WAIT)


async def test_raise_if_cancelled_in_a_handler_reports_the_cancellation() -> None:
    @alien.command("checks")
    def checks(ctx: alien.CommandContext) -> None:
        ctx.cancel("the handler noticed")  # as if the runtime had cancelled it just now
        ctx.raise_if_cancelled()

    code, message, _ = error_of(await run("checks"))
    assert (code, message) == (COMMAND_CANCELLED, "the handler noticed")


async def test_a_handler_that_ignores_cancellation_is_abandoned_after_the_grace() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    @alien.command("stubborn")
    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop

    ctx = new_context()
    running = asyncio.create_task(run("stubborn", context=ctx, cancel_grace=0.05))
    await asyncio.wait_for(started.wait(), WAIT)
    ctx.cancel()
    code, _, _ = error_of(await asyncio.wait_for(running, WAIT))
    assert code == COMMAND_CANCELLED
    release.set()  # let the abandoned task end so the loop closes cleanly


async def test_cancelling_the_caller_cancels_the_handler_and_propagates() -> None:
    started, unwound = asyncio.Event(), asyncio.Event()

    @alien.command("long")
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    ctx = new_context()
    running = asyncio.create_task(run("long", context=ctx))
    await asyncio.wait_for(started.wait(), WAIT)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.wait_for(unwound.wait(), WAIT)
    assert ctx.cancel_code == COMMAND_CANCELLED


async def test_an_already_cancelled_context_does_not_start_the_handler() -> None:
    calls: list[int] = []
    alien.command("never")(lambda: calls.append(1))
    ctx = new_context()
    ctx.cancel("before it began")
    code, message, _ = error_of(await run("never", context=ctx))
    assert (code, message, calls) == (COMMAND_CANCELLED, "before it began", [])


# --- exceptions -----------------------------------------------------------------------------


def _boom() -> None:
    raise ValueError("boom: /srv/app/secret-path")


def raising(error: BaseException) -> Any:
    """A handler that raises ``error``."""

    def handler() -> None:
        raise error

    return handler


async def test_an_exception_becomes_handler_error_without_a_traceback() -> None:
    alien.command("sync-boom")(_boom)

    @alien.command("async-boom")
    async def async_boom() -> None:
        _boom()

    for name in ["sync-boom", "async-boom"]:
        code, message, details = error_of(await run(name))
        assert code == HANDLER_ERROR
        assert message == "ValueError: boom: /srv/app/secret-path"
        assert details == {"type": "builtins.ValueError"}


async def test_the_traceback_is_sent_only_when_the_deployment_opts_in() -> None:
    alien.command("boom")(_boom)
    _, _, details = error_of(await run("boom", include_traceback=True))
    assert details["type"] == "builtins.ValueError"
    assert "Traceback (most recent call last)" in details["traceback"]
    assert "in _boom" in details["traceback"]


async def test_an_alien_error_keeps_its_code_and_field() -> None:
    @alien.command("find")
    def find(key: str) -> None:
        raise NotFound(f"no report {key}", field="key", details={"key": key})

    code, message, details = error_of(await run("find", {"key": "r1"}))
    assert (code, message) == ("NOT_FOUND", "no report r1")
    assert details["field"] == "key" and details["details"] == {"key": "r1"}


async def test_odd_exceptions_still_give_a_valid_failure() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    class BadCode(NotFound):
        code = "not a valid code"

    alien.command("unprintable")(raising(Unprintable()))
    alien.command("long-message")(raising(ValueError("x" * 10_000)))
    alien.command("bad-code")(raising(BadCode("odd")))
    alien.command("empty")(raising(KeyError()))

    _, message, _ = error_of(await run("unprintable"))
    assert message == "Unprintable: <unprintable Unprintable>"
    _, message, _ = error_of(await run("long-message"))
    assert len(message) == 4096 and message.endswith("…")
    assert error_of(await run("bad-code"))[:2] == (HANDLER_ERROR, "BadCode: odd")
    assert error_of(await run("empty"))[:2] == (HANDLER_ERROR, "KeyError")


async def test_details_that_do_not_fit_the_wire_are_dropped_not_fatal() -> None:
    alien.command("huge")(raising(NotFound("gone", details={"blob": "x" * 100_000})))
    alien.command("opaque")(raising(NotFound("gone", details={"thing": object()})))
    for name in ["huge", "opaque"]:
        code, message, details = error_of(await run(name))
        assert (code, message) == ("NOT_FOUND", "gone")
        assert details == {"type": "alien.errors.NotFound"}


def test_a_failure_with_a_code_the_wire_refuses_falls_back_to_handler_error() -> None:
    response = failure(new_context(), "not-a-code", "")
    assert error_of(response) == (HANDLER_ERROR, "the command failed", {})


async def test_the_list_of_problems_is_bounded() -> None:
    def many(**params: Any) -> None: ...

    keyword = inspect.Parameter.KEYWORD_ONLY
    many.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"p{i}", keyword) for i in range(MAX_PROBLEMS + 10)]
    )
    alien.command("many")(many)
    _, message, details = error_of(await run("many"))
    assert message == "many: missing required parameter 'p0'"
    assert len(details["problems"]) == MAX_PROBLEMS


async def test_sys_exit_in_a_sync_handler_does_not_stop_the_runtime() -> None:
    alien.command("exits")(lambda: sys.exit(3))
    code, message, details = error_of(await run("exits"))
    assert (code, message, details["type"]) == (
        HANDLER_ERROR,
        "SystemExit: 3",
        "builtins.SystemExit",
    )


# --- results --------------------------------------------------------------------------------


class Report(BaseModel):
    name: str
    rows: int


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"a": [1, 2.5, True, None, "s"]}, {"a": [1, 2.5, True, None, "s"]}),
        ("text", "text"),
        (Report(name="r", rows=3), {"name": "r", "rows": 3}),
        (Point(1, 2), {"x": 1, "y": 2}),
        ((1, 2), [1, 2]),
        (datetime(2030, 1, 1, tzinfo=UTC), "2030-01-01T00:00:00Z"),
        ({"blob": b"\x00\xff"}, {"blob": "AP8="}),
        ({BINARY_KEY: 5}, {BINARY_KEY: 5}),  # not the binary marker's shape
    ],
)
async def test_json_serialisable_results_are_inline(value: Any, expected: Any) -> None:
    alien.command("value")(lambda: value)
    response = await run("value")
    assert response.ok and response.result_ref is None
    assert response.result == expected


@pytest.mark.parametrize("value", [b"\x00binary\xff", bytearray(b"abc"), memoryview(b"xyz"), b""])
async def test_bytes_results_are_marked_binary(value: Any) -> None:
    @alien.command("export")
    def export(table: str, ctx: alien.CommandContext) -> Any:
        return value

    response = await run("export", {"table": "t"})
    assert response.ok
    assert list(response.result) == [BINARY_KEY]
    assert decode_result(response.result) == bytes(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (object(), "not JSON-serialisable"),
        ({"x": float("nan")}, "not valid JSON"),
        ({"x": float("inf")}, "not valid JSON"),
        ({BINARY_KEY: "AAAA"}, "reserved for binary results"),
        ({"s": "\ud800"}, "not valid JSON"),
    ],
)
async def test_results_that_are_not_json_are_handler_errors(value: Any, why: str) -> None:
    alien.command("value")(lambda: value)
    code, message, _ = error_of(await run("value"))
    assert code == HANDLER_ERROR
    assert why in message


async def test_a_too_large_result_fails_without_a_store() -> None:
    alien.command("big")(lambda: "x" * MAX_INLINE_BYTES)
    code, message, _ = error_of(await run("big"))
    assert code == HANDLER_ERROR
    assert f"{MAX_INLINE_BYTES + 2} bytes as JSON" in message


async def test_a_result_just_under_the_limit_is_inline() -> None:
    alien.command("fits")(lambda: "x" * (MAX_INLINE_BYTES - 2))
    response = await run("fits")
    assert response.ok and response.result_ref is None


class MemoryResultStore:
    """A real (in-memory) result store: keeps what it is given, addressed by its digest."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def __call__(self, document: bytes) -> BlobRef:
        digest = hashlib.sha256(document).hexdigest()
        self.blobs[digest] = document
        return BlobRef(url=f"https://blobs.example/{digest}", size=len(document), sha256=digest)


@pytest.mark.parametrize("value", [{"rows": ["x" * 1000] * 300}, b"\x01" * MAX_INLINE_BYTES])
async def test_a_too_large_result_goes_through_the_store_as_its_json(value: Any) -> None:
    store = MemoryResultStore()
    alien.command("big")(lambda: value)
    response = await run("big", offload=store)
    assert response.ok and response.result is None and response.result_ref is not None
    document = store.blobs[response.result_ref.sha256]
    assert response.result_ref.size == len(document) > MAX_INLINE_BYTES
    assert decode_result(json.loads(document)) == value


def test_decode_result_refuses_a_broken_binary_marker() -> None:
    with pytest.raises(ValidationError, match="not valid base64") as info:
        decode_result({BINARY_KEY: "not base64!"})
    assert info.value.field == "result"
    assert decode_result({"plain": 1}) == {"plain": 1}
