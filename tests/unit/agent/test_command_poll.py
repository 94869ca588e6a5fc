"""The long-poll lease loop against a scripted manager: it asks for as many commands as there
are free slots, and while none is free it holds a request open for cancels only (``max=0``),
dropped for one that asks for commands as soon as a slot frees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from alien.agent.command_poll import CommandPoller
from alien.client.calls import Call
from alien.errors import ValidationError
from alien.protocol.agent_channel import AgentPoll, CommandCancel, HeldLease

HELD = HeldLease(command_id="cmd_1", lease_id="lse_1")
CANCEL = CommandCancel(
    command_id="cmd_1", lease_id="lse_1", code="COMMAND_CANCELLED", message="cancelled"
)


class ScriptedManager:
    """Answers each lease request with the next future it is given; records what was asked."""

    def __init__(self) -> None:
        self.asked: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[AgentPoll]]] = (
            asyncio.Queue()
        )
        self.dropped: list[int] = []

    async def call(self, call: Call[AgentPoll]) -> AgentPoll:
        answer: asyncio.Future[AgentPoll] = asyncio.get_running_loop().create_future()
        self.asked.put_nowait((dict(call.params or {}), answer))
        try:
            return await answer
        except asyncio.CancelledError:
            self.dropped.append(call.params["max"])  # type: ignore[index]
            raise


class Slots:
    def __init__(self, free: int) -> None:
        self.free = free
        self.freed = asyncio.Event()

    async def capacity(self) -> int:
        while not self.free:
            self.freed.clear()
            await self.freed.wait()
        return self.free

    def release(self, count: int = 1) -> None:
        self.free += count
        self.freed.set()


@asynccontextmanager
async def polling(manager: ScriptedManager, slots: Slots) -> AsyncIterator[list[Any]]:
    """A poller running against ``manager`` with ``slots``; what it delivered."""
    link = SimpleNamespace(connected=True, transport="poll", client=manager)
    delivered: list[Any] = []
    poller = CommandPoller(
        link,  # type: ignore[arg-type]
        delivered.append,
        slots.capacity,
        lambda: [HELD],
        lambda: slots.free,
        retry_after=0.01,
    )
    running = asyncio.create_task(poller.run())
    try:
        yield delivered
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_busy_agent_holds_a_request_for_cancels_and_drops_it_when_a_slot_frees() -> None:
    manager, slots = ScriptedManager(), Slots(free=0)
    async with polling(manager, slots) as delivered:
        params, answer = await asyncio.wait_for(manager.asked.get(), 5)
        assert params["max"] == 0  # every slot busy: cancels only
        answer.set_result(AgentPoll(messages=(CANCEL,)))
        params, answer = await asyncio.wait_for(manager.asked.get(), 5)
        assert delivered == [CANCEL] and params["max"] == 0
        slots.release(3)  # the open cancels-only request gives way to one for commands
        params, _ = await asyncio.wait_for(manager.asked.get(), 5)
        assert params["max"] == 3 and manager.dropped == [0]


async def test_an_older_manager_refusing_max_0_is_waited_out_for_a_free_slot() -> None:
    manager, slots = ScriptedManager(), Slots(free=0)
    async with polling(manager, slots):
        params, answer = await asyncio.wait_for(manager.asked.get(), 5)
        assert params["max"] == 0
        answer.set_exception(ValidationError("must be at least 1", field="max"))
        await asyncio.sleep(0.1)
        assert manager.asked.empty()  # no retry loop: it waits for a slot instead
        slots.release()
        params, _ = await asyncio.wait_for(manager.asked.get(), 5)
        assert params["max"] == 1
