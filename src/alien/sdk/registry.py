"""The one registry of everything app code hands to the runtime: handlers and the served app.

App modules register at import time (decorators, ``alien.serve``); the function runtime imports the
entrypoint and then reads this registry to know what to run. One registry for every handler kind
(queue, storage, cron, and later commands) keeps the runtime's dispatch uniform: a handler is a
callable plus the name of the thing it handles, sync or async alike.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from alien.errors import ValidationError


class HandlerKind(StrEnum):
    """What a handler reacts to. Values are stable: they appear in logs and error messages."""

    QUEUE = "queue"
    STORAGE = "storage"
    CRON = "cron"
    COMMAND = "command"


@dataclass(frozen=True)
class Handler:
    """A registered callable and the resource (or schedule/command name) it handles."""

    kind: HandlerKind
    name: str
    func: Callable[..., Any]

    @property
    def qualname(self) -> str:
        """``module.function``: how logs name the handler."""
        return f"{self.func.__module__}.{getattr(self.func, '__qualname__', repr(self.func))}"

    async def call(self, *args: Any) -> Any:
        """Run the handler: async ones on the loop, sync ones in a worker thread.

        Sync handlers run in a thread so a blocking handler (file I/O, a slow HTTP call) never
        stalls the HTTP server or the other trigger loops sharing the event loop.
        """
        if inspect.iscoroutinefunction(self.func):
            return await self.func(*args)
        result = await asyncio.to_thread(self.func, *args)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            return await result
        return result


class HandlerRegistry:
    """Handlers keyed by (kind, name), plus at most one served ASGI app.

    Registering two handlers for the same key is an error: the second would silently win and one
    of them would never run, which is the kind of bug that only shows up in a customer environment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[tuple[HandlerKind, str], Handler] = {}
        self._app: Any = None

    def add(self, kind: HandlerKind, name: str, func: Callable[..., Any]) -> Handler:
        if not callable(func):
            raise ValidationError(f"{kind} handler for {name!r} is not callable", field=name)
        handler = Handler(kind=kind, name=name, func=func)
        with self._lock:
            existing = self._handlers.get((kind, name))
            if existing is not None and existing.func is not func:
                raise ValidationError(
                    f"two {kind} handlers for {name!r}: {existing.qualname} and {handler.qualname}",
                    field=name,
                )
            self._handlers[(kind, name)] = handler
        return handler

    def get(self, kind: HandlerKind, name: str) -> Handler | None:
        with self._lock:
            return self._handlers.get((kind, name))

    def of_kind(self, kind: HandlerKind) -> list[Handler]:
        with self._lock:
            return sorted(
                (h for (k, _), h in self._handlers.items() if k == kind), key=lambda h: h.name
            )

    def set_app(self, app: Any) -> None:
        if not callable(app):
            raise ValidationError("alien.serve() needs an ASGI application", field="app")
        with self._lock:
            if self._app is not None and self._app is not app:
                raise ValidationError("alien.serve() was called with two different apps")
            self._app = app

    @property
    def app(self) -> Any:
        with self._lock:
            return self._app

    def clear(self) -> None:
        """Forget everything (tests, and a runtime that re-imports an entrypoint)."""
        with self._lock:
            self._handlers.clear()
            self._app = None


registry = HandlerRegistry()
"""The process-wide registry the decorators write to and the runtime reads."""
