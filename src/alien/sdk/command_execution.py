"""Running one bound command handler under its deadline and cancellation signal.

Async handlers run as a task on the caller's event loop and are cancelled (``CancelledError`` at
their next ``await``) when the command must stop. Sync handlers run in a thread of their own so the
loop stays free for what must keep happening meanwhile (lease renewals, the HTTP server, other
commands); a thread cannot be interrupted, so when the command must stop its context's flag is
set, the runtime stops waiting, and whatever the thread returns later is discarded.

Sync calls run on :class:`HandlerThreads`, daemon threads of our own rather than asyncio's
default executor: a handler that ignores its flag would otherwise hold an executor worker for
ever, starve the other users of ``asyncio.to_thread`` and block the event loop's shutdown, which
waits for that executor. The threads are kept for reuse when idle (starting one costs more than
a no-op command's whole run here), and a call never waits for a busy one: with none idle, a new
thread starts, so a stuck handler only ever costs its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alien.protocol.command_messages import HANDLER_TIMEOUT
from alien.sdk.command_context import CommandContext

log = logging.getLogger("alien.sdk.commands")

CANCEL_GRACE_SECONDS = 5.0
"""How long a cancelled async handler may take to unwind before the runtime stops waiting."""

_abandoned: set[asyncio.Task[Any]] = set()
"""Tasks that did not stop within the grace period: kept referenced so they are not collected."""


@dataclass(frozen=True)
class Finished:
    """The handler returned ``value``."""

    value: Any


@dataclass(frozen=True)
class Raised:
    """The handler raised ``error``."""

    error: BaseException


@dataclass(frozen=True)
class Stopped:
    """The handler was stopped: ``code`` is ``COMMAND_CANCELLED`` or ``HANDLER_TIMEOUT``."""

    code: str
    reason: str


Outcome = Finished | Raised | Stopped


async def execute(
    func: Callable[..., Any],
    kwargs: dict[str, Any],
    context: CommandContext,
    *,
    is_async: bool,
    label: str,
    cancel_grace: float = CANCEL_GRACE_SECONDS,
) -> Outcome:
    """Run ``func(**kwargs)`` until it ends, the deadline passes, or ``context`` is cancelled.

    If the caller itself is cancelled, the handler is cancelled too (the context's flag is set)
    and ``CancelledError`` propagates: stopping the runtime is not a command outcome.
    """
    remaining = context.remaining()
    if remaining <= 0:
        context.expire()
        return Stopped(HANDLER_TIMEOUT, "the command's deadline passed before the handler started")
    if context.cancelled:
        return _stopped(context)
    task = asyncio.create_task(_invoke(func, kwargs, is_async, label), name=f"command {label}")
    signal = asyncio.create_task(context.wait_cancelled(), name=f"command {label} signal")
    try:
        await asyncio.wait({task, signal}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        context.cancel("the runtime stopped while the command was running")
        task.cancel()
        task.add_done_callback(_forget)
        raise
    finally:
        signal.cancel()
    if not task.done():
        context.expire()  # no-op if it was cancelled meanwhile: the first reason wins
    if context.cancelled:
        await _stop(task, cancel_grace, label)
        return _stopped(context)
    if task.cancelled():  # the handler cancelled itself (e.g. awaited something that was)
        return Raised(asyncio.CancelledError("the handler's own task was cancelled"))
    return task.result()


def _stopped(context: CommandContext) -> Stopped:
    return Stopped(context.cancel_code or HANDLER_TIMEOUT, context.cancel_reason or "stopped")


async def _invoke(
    func: Callable[..., Any], kwargs: dict[str, Any], is_async: bool, label: str
) -> Finished | Raised:
    """The handler's outcome; only cancellation (and what asyncio never catches) escapes."""
    call = functools.partial(func, **kwargs)
    if is_async:
        return await _on_loop(call)
    outcome = await _in_thread(call, label)
    if isinstance(outcome, Finished) and inspect.isawaitable(outcome.value):
        # A sync callable handed back a coroutine: finish it on the loop, like an async handler.
        return await _on_loop(functools.partial(_identity, outcome.value))
    return outcome


async def _on_loop(call: Callable[[], Any]) -> Finished | Raised:
    try:
        result = call()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return Raised(exc)
    return Finished(result)


def _identity(value: Any) -> Any:
    return value


def _in_thread(call: Callable[[], Any], label: str) -> asyncio.Future[Finished | Raised]:
    """Run ``call`` on a handler thread (with the caller's context variables).

    Everything the thread raises, ``SystemExit`` included, is the handler's failure: it must not
    travel into the event loop, which would stop the whole runtime.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Finished | Raised] = loop.create_future()
    variables = contextvars.copy_context()

    def deliver(outcome: Finished | Raised) -> None:
        if not future.done():  # else the runtime stopped waiting: the late result is discarded
            future.set_result(outcome)

    def work() -> None:
        outcome: Finished | Raised
        try:
            outcome = Finished(variables.run(call))
        except BaseException as exc:
            outcome = Raised(exc)
        # A closed loop raises RuntimeError: nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, outcome)

    HANDLER_THREADS.run(work, label)
    return future


class HandlerThreads:
    """Daemon threads that run sync handlers, reused while idle (see the module docstring).

    A thread idle for ``idle_seconds`` exits; at most ``max_idle`` wait for work at once (the
    rest exit as soon as they finish), so a burst does not leave a crowd of threads behind.
    """

    def __init__(self, *, idle_seconds: float = 60.0, max_idle: int = 16) -> None:
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle
        self._work: queue.SimpleQueue[tuple[Callable[[], None], str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    @property
    def idle(self) -> int:
        with self._lock:
            return self._idle

    def run(self, work: Callable[[], None], label: str) -> None:
        """Start ``work`` now: on an idle thread if there is one, else on a new thread."""
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1  # that thread is spoken for: the next call will not count it
        if reuse:
            self._work.put((work, label))
            return
        threading.Thread(target=self._serve, args=(work, label), daemon=True).start()

    def _serve(self, work: Callable[[], None], label: str) -> None:
        while True:
            threading.current_thread().name = f"alien-command-{label}"  # for thread dumps
            work()
            with self._lock:
                if self._idle >= self._max_idle:
                    return
                self._idle += 1
            try:
                work, label = self._work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Waiting threads = unclaimed idle ones + work claimed but not yet taken:
                    # retire only an unclaimed one, or claimed work would find nobody.
                    if self._idle > 0:
                        self._idle -= 1
                        return
                work, label = self._work.get()


HANDLER_THREADS = HandlerThreads()


async def _stop(task: asyncio.Task[Any], grace: float, label: str) -> None:
    """Cancel ``task`` and give it ``grace`` seconds to unwind; abandon it after that."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("command %s did not stop within %.1fs of being cancelled", label, grace)
        _abandoned.add(task)
        task.add_done_callback(_forget)
    else:
        _forget(task)


def _forget(task: asyncio.Task[Any]) -> None:
    """Drop ``task`` from the abandoned set and mark its exception, if any, as retrieved."""
    _abandoned.discard(task)
    if task.done() and not task.cancelled():
        task.exception()
