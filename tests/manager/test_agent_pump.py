"""An agent's command link sends what is queued for it in one go.

Under load the manager's event loop turns slowly (each turn may run a batch of command writes),
so a pump that yielded to the loop between messages handed an agent one offer per turn: measured
with 64 concurrent invokers, offers then waited ~30 ms between their commit and the agent; sent
together, ~10 ms. These tests pin that: once the pump runs, every queued message is written in
the same turn — and still in order, and one at a time when a send has to wait.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from alien.manager.api.agent import _AgentConnection
from alien.manager.commands.links import AgentLink
from alien.protocol.agent_channel import ChannelError, parse_manager_message


class _Socket:
    """The part of a Starlette WebSocket the connection's ``send`` uses."""

    base_url = "ws://127.0.0.1:1/"

    def __init__(self, *, pause: asyncio.Event | None = None) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(commands=None))
        self.sent: list[str] = []
        self.pause = pause

    async def send_text(self, text: str) -> None:
        if self.pause is not None and not self.pause.is_set():
            await self.pause.wait()  # the transport paused writing
        self.sent.append(text)


def _connection(socket: _Socket) -> _AgentConnection:
    return _AgentConnection(core=None, websocket=socket, deployment_id="dep_pump")  # type: ignore[arg-type]


def _codes(socket: _Socket) -> list[str]:
    return [parse_manager_message(text).code for text in socket.sent]  # type: ignore[union-attr]


async def test_queued_messages_leave_in_the_turn_the_pump_runs() -> None:
    socket = _Socket()
    connection = _connection(socket)
    link = AgentLink("dep_pump", "http://127.0.0.1:1")
    for number in range(20):
        link.push(ChannelError(code=f"M{number}", message="queued"))
    pump = asyncio.create_task(link.pump(connection.send))
    try:
        await asyncio.sleep(0)  # exactly one turn of the loop for the pump
        assert _codes(socket) == [f"M{number}" for number in range(20)]
    finally:
        pump.cancel()


async def test_concurrent_sends_wait_for_each_other_in_order() -> None:
    gate = asyncio.Event()
    socket = _Socket(pause=gate)
    connection = _connection(socket)
    first = asyncio.create_task(connection.send(ChannelError(code="FIRST", message="x")))
    await asyncio.sleep(0)
    second = asyncio.create_task(connection.send(ChannelError(code="SECOND", message="x")))
    await asyncio.sleep(0.01)
    assert socket.sent == [] and not second.done()  # the lock holds the second back
    gate.set()
    await asyncio.gather(first, second)
    assert _codes(socket) == ["FIRST", "SECOND"]
