"""The manager's end of a long-polling agent's tunnel leg (``HttpLeg``), in process: what the
splice sees as a message transport and what the agent's ``up``/``down`` requests get."""

from __future__ import annotations

import asyncio

import pytest

from alien.errors import ValidationError
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


async def test_up_answers_only_once_the_splice_took_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(debug_http_leg, "RECEIVE_LIMIT", 4)
    leg = _leg()
    posting = asyncio.create_task(leg.up(0, [b"12345"]))
    await asyncio.sleep(0.05)
    assert not posting.done()
    assert await leg.recv() == b"12345"
    assert await asyncio.wait_for(posting, 1) == 1
