"""The manager's end of a long-polling agent's tunnel leg (``HttpLeg``), in process: what the
splice sees as a message transport and what the agent's ``up``/``down`` requests get."""

from __future__ import annotations

import asyncio

import pytest

from alien.errors import TooManyRequests, ValidationError
from alien.manager import debug_http_leg
from alien.manager.debug_http_leg import HttpLeg
from alien.tunnel.errors import TunnelClosed


def _leg() -> HttpLeg:
    return HttpLeg("dbg_" + "a" * 26, "dep_" + "b" * 26)


async def test_messages_go_both_ways_in_order_and_a_resend_is_skipped() -> None:
    leg = _leg()
    assert await leg.up(0, [b"hello", b"open"]) == 2
    assert await leg.up(1, [b"open", b"data"]) == 3  # "open" again: a lost answer's resend
    assert [await leg.recv() for _ in range(3)] == [b"hello", b"open", b"data"]
    await leg.send(b"one")
    await leg.send(b"two")
    assert await leg.down(0, wait=0) == (0, [b"one", b"two"])
    assert await leg.down(0, wait=0) == (0, [b"one", b"two"])  # the answer was lost
    assert await leg.down(2, wait=0) == (2, [])


async def test_a_batch_past_the_next_message_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        await _leg().up(1, [b"x"])
    assert refused.value.code == "TUNNEL_BATCH_GAP"


async def test_a_waiting_down_is_answered_as_soon_as_a_message_is_sent() -> None:
    leg = _leg()
    waiting = asyncio.create_task(leg.down(0, wait=10))
    await asyncio.sleep(0.01)
    await leg.send(b"now")
    assert await asyncio.wait_for(waiting, 1) == (0, [b"now"])


async def test_closing_lets_the_agent_collect_the_rest_then_the_leg_is_gone() -> None:
    leg = _leg()
    await leg.send(b"goaway")
    await leg.close()
    with pytest.raises(TunnelClosed):
        await leg.send(b"late")
    assert await leg.down(0, wait=0) == (0, [b"goaway"])
    with pytest.raises(TunnelClosed):
        await leg.down(1, wait=0)  # everything collected: closed for good
    with pytest.raises(TunnelClosed):
        await leg.up(0, [b"x"])


async def test_abort_ends_a_waiting_recv_and_send() -> None:
    leg = _leg()
    receiving = asyncio.create_task(leg.recv())
    await asyncio.sleep(0.01)
    await leg.abort()
    with pytest.raises(TunnelClosed):
        await asyncio.wait_for(receiving, 1)


async def test_send_waits_while_too_much_is_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(debug_http_leg, "SEND_LIMIT", 4)
    leg = _leg()
    sending = asyncio.create_task(leg.send(b"12345"))
    await asyncio.sleep(0.05)
    assert not sending.done()
    assert await leg.down(0, wait=0) == (0, [b"12345"])
    await leg.down(1, wait=0)  # acknowledged: the sender goes on
    await asyncio.wait_for(sending, 1)


async def test_up_takes_a_batch_only_while_the_splice_has_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(debug_http_leg, "RECEIVE_LIMIT", 4)
    leg = _leg()
    assert await leg.up(0, [b"12345"]) == 1  # room: taken at once
    waiting = asyncio.create_task(leg.up(1, [b"6"], wait=10))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # more than the limit waits for the splice: nothing taken
    assert await leg.up(1, [b"6"], wait=0) == 1  # a wait that runs out takes nothing
    assert await leg.recv() == b"12345"
    assert await asyncio.wait_for(waiting, 1) == 2
    assert await leg.recv() == b"6"


async def test_the_legs_end_wakes_an_up_waiting_for_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug_http_leg, "RECEIVE_LIMIT", 4)
    monkeypatch.setattr(debug_http_leg, "LINGER", 0.05)
    leg = _leg()
    await leg.up(0, [b"12345"])
    waiting = asyncio.create_task(leg.up(1, [b"6"], wait=30))
    await asyncio.sleep(0.01)
    await leg.close()  # the splice ended; the leg finishes after LINGER
    with pytest.raises(TunnelClosed):
        await asyncio.wait_for(waiting, 1)


async def test_one_request_of_each_kind_at_a_time() -> None:
    leg = _leg()
    with leg.one_at_a_time("up"), leg.one_at_a_time("down"):
        with pytest.raises(TooManyRequests) as refused, leg.one_at_a_time("up"):
            pass
        assert refused.value.status == 429 and refused.value.code == "LEG_BUSY"
    with leg.one_at_a_time("up"):  # free again
        pass
