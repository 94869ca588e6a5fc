"""The generic async view: same names, off the event loop, iterators become async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from alien.bindings.aio import AsyncView, async_iterator, async_view


class Blocking:
    """A stand-in target recording which thread ran each call."""

    label = "plain attribute"

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.closed = False

    def echo(self, value: int, *, plus: int = 0) -> int:
        self.threads.append(threading.get_ident())
        return value + plus

    def fail(self) -> None:
        raise KeyError("boom")

    @async_iterator
    def count(self, n: int) -> Iterator[int]:
        self.threads.append(threading.get_ident())
        if n < 0:
            raise ValueError("negative")
        return iter(range(n))

    @async_view
    def child(self) -> Blocking:
        return Blocking()

    def close(self) -> None:
        self.closed = True


async def test_calls_run_off_the_loop_thread() -> None:
    target = Blocking()
    view = AsyncView(target)
    assert await view.echo(1, plus=2) == 3
    assert target.threads and target.threads[0] != threading.get_ident()
    assert view.label == "plain attribute"
    assert view.sync is target
    assert view.echo.__name__ == "echo"


async def test_exceptions_propagate() -> None:
    with pytest.raises(KeyError):
        await AsyncView(Blocking()).fail()


async def test_iterators_become_async_iterators() -> None:
    view = AsyncView(Blocking())
    assert [i async for i in view.count(3)] == [0, 1, 2]
    assert [i async for i in view.count(0)] == []
    lazy = view.count(-1)  # creating it does not run the call...
    with pytest.raises(ValueError, match="negative"):
        await anext(lazy)  # ...iterating does


async def test_views_wrap_results_and_close() -> None:
    view = AsyncView(Blocking())
    child = await view.child()
    assert isinstance(child, AsyncView)
    async with child:
        assert await child.echo(5) == 5
    assert child.sync.closed


async def test_concurrent_calls_do_not_serialise_on_the_loop() -> None:
    gate = threading.Barrier(2, timeout=5)

    class Meeting:
        def meet(self) -> bool:
            gate.wait()  # only returns when both calls run at the same time
            return True

    view = AsyncView(Meeting())
    assert await asyncio.gather(view.meet(), view.meet()) == [True, True]
