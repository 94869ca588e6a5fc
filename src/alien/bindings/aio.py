"""One generic async flavour for every backend: ``await alien.kv("c").aio.get("k")``.

The backends are written once, synchronously (SQLite, the filesystem and boto3 all block).
Instead of a second hand-written async class per backend, :class:`AsyncView` wraps any object
and runs each method call in a worker thread with :func:`asyncio.to_thread`, so the event loop
never blocks and the async API can never drift from the sync one. Methods that return
iterators (``list``, ``scan``, ``iter``) are marked with :func:`async_iterator` and become
async iterators; methods that return an object with its own blocking methods (``open`` returns
a file) are marked with :func:`async_view` and return that object wrapped in turn.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__alien_async__"
_Mode = Literal["iter", "view"]


def _marked(mode: _Mode) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, _MARK, mode)
        return fn

    return mark


async_iterator = _marked("iter")
"""Mark a method returning an iterator: its async form is an async iterator."""

async_view = _marked("view")
"""Mark a method returning an object with blocking methods: its async form wraps the result."""


class AsyncIteratorView(AsyncIterator[T]):
    """Drive a blocking iterator from async code, one ``next()`` per worker-thread hop.

    The iterator is created lazily (in a thread too) by the first ``__anext__``, so a call
    such as ``storage.aio.list()`` itself never blocks and errors surface on first iteration.
    """

    def __init__(self, start: Callable[[], Iterator[T]]) -> None:
        self._start = start
        self._iterator: Iterator[T] | None = None

    def __aiter__(self) -> AsyncIteratorView[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            self._iterator = await asyncio.to_thread(self._start)
        done, item = await asyncio.to_thread(_step, self._iterator)
        if done:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _step(iterator: Iterator[T]) -> tuple[bool, T | None]:
    # StopIteration must not cross a Future boundary (asyncio turns it into a RuntimeError).
    try:
        return False, next(iterator)
    except StopIteration:
        return True, None


class AsyncView(Generic[T]):
    """The async face of ``target``: same method names, each awaitable (or async-iterable)."""

    __slots__ = ("_target",)

    def __init__(self, target: T) -> None:
        self._target = target

    @property
    def sync(self) -> T:
        """The wrapped blocking object."""
        return self._target

    def __getattr__(self, name: str) -> Any:
        if name == "_target":  # not initialised (copy/pickle): don't recurse
            raise AttributeError(name)
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        mode: _Mode | None = getattr(attr, _MARK, None)
        if mode == "iter":

            @functools.wraps(attr)
            def iterate(*args: Any, **kwargs: Any) -> AsyncIteratorView[Any]:
                return AsyncIteratorView(functools.partial(attr, *args, **kwargs))

            return iterate

        @functools.wraps(attr)
        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await asyncio.to_thread(attr, *args, **kwargs)
            return AsyncView(result) if mode == "view" else result

        return call

    async def __aenter__(self) -> AsyncView[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        close = getattr(self._target, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    def __repr__(self) -> str:
        return f"AsyncView({self._target!r})"
