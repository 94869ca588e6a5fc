"""The agent's lease keeping and response outbox, against a scripted manager answer.

End to end (``test_agent_resilience``) a lease is kept, lost to a dead agent, or refused as
stale; these cases pin down the timing rules themselves, which real processes can only hit by
chance: the first message is an ack at a third of the TTL, renewals follow every third, a refusal
or a lease run out without any answer ends the keeping, a lease already capped at the deadline
is never renewed, and a reconnect (``wake``) renews at once. And a keeper that is cancelled
(its handler finished) stops even when a receipt or a wake-up came in the same loop turn: on
Python 3.11 ``asyncio.wait_for`` returned the result instead, the keeper renewed the lease
forever and the finished command's response was never sent (a CI flake of
``test_agent_killed_mid_handler_the_command_runs_again_and_ends_once``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from alien.agent.command_lease import Lease, LeaseKeeper
from alien.agent.command_receipts import Outbox, Receipts
from alien.protocol.agent_channel import (
    AgentMessage,
    CommandReceipt,
    CommandRenew,
    CommandResponseMessage,
)
from alien.protocol.command_messages import CommandResponse

CID, LID = "cmd_0000000000000000000000001", "lse_0000000000000000000000001"
TTL = 0.3


def lease(ttl: float = TTL, deadline_in: float = 60.0) -> Lease:
    now = datetime.now(UTC)
    return Lease(CID, LID, now + timedelta(seconds=ttl), now + timedelta(seconds=deadline_in))


class ScriptedManager:
    """Answers acks and renewals as the manager would (or as told to), and records them."""

    def __init__(self, *, refuse_after: int | None = None, silent: bool = False) -> None:
        self.calls: list[tuple[str, float]] = []
        self.refuse_after = refuse_after
        self.silent = silent
        self.started = time.monotonic()

    async def __call__(
        self, kind: Literal["ack", "renew"], timeout: float
    ) -> CommandReceipt | None:
        self.calls.append((kind, time.monotonic() - self.started))
        if self.silent:
            return None
        if self.refuse_after is not None and len(self.calls) > self.refuse_after:
            refused = {"code": "COMMAND_CANCELLED", "message": "cancelled by an operator"}
            return CommandReceipt(command_id=CID, lease_id=LID, of=kind, ok=False, **refused)
        expires = datetime.now(UTC) + timedelta(seconds=TTL)
        return CommandReceipt(
            command_id=CID, lease_id=LID, of=kind, ok=True, lease_expires_at=expires
        )


async def test_acks_at_a_third_of_the_ttl_then_renews() -> None:
    manager = ScriptedManager()
    keeper = LeaseKeeper(lease(), manager)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(keeper.keep(), 1.2 * TTL + 0.05)
    kinds = [kind for kind, _ in manager.calls]
    assert kinds[0] == "ack" and set(kinds[1:]) == {"renew"} and len(kinds) >= 3
    first_at = manager.calls[0][1]
    assert TTL / 3 - 0.02 <= first_at < TTL / 2  # not at once: a fast handler needs no ack
    assert keeper.lease.acked


async def test_a_refusal_ends_the_lease_with_its_code() -> None:
    lost = await asyncio.wait_for(LeaseKeeper(lease(), ScriptedManager(refuse_after=1)).keep(), 2)
    assert lost.code == "COMMAND_CANCELLED" and lost.message == "cancelled by an operator"


async def test_no_answer_until_the_lease_ran_out_loses_it() -> None:
    started = time.monotonic()
    lost = await asyncio.wait_for(LeaseKeeper(lease(), ScriptedManager(silent=True)).keep(), 2)
    assert lost.code == "STALE_LEASE"
    assert time.monotonic() - started >= TTL - 0.02  # not before it actually ran out


async def test_a_lease_capped_at_the_deadline_is_not_renewed() -> None:
    manager = ScriptedManager()
    capped = lease(ttl=TTL, deadline_in=TTL)
    capped.expires_at = capped.deadline
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(LeaseKeeper(capped, manager).keep(), TTL)
    assert manager.calls == []


async def test_wake_renews_at_once() -> None:
    manager = ScriptedManager()
    keeper = LeaseKeeper(lease(ttl=30.0), manager)  # next renewal would be in 10 s
    task = asyncio.create_task(keeper.keep())
    await asyncio.sleep(0.05)
    keeper.wake()
    await asyncio.sleep(0.05)
    task.cancel()
    assert [kind for kind, _ in manager.calls] == ["ack"]


async def test_the_outbox_keeps_a_response_until_a_receipt_settles_it() -> None:
    sent: list[AgentMessage] = []
    connected = False

    async def send(message: AgentMessage) -> bool:
        if connected:
            sent.append(message)
        return connected

    outbox = Outbox(send)
    response = CommandResponse.success(CID, LID, {"answer": 42})
    await outbox.put(response)  # not connected: kept
    assert (CID, LID) in outbox and sent == []
    connected = True
    outbox.flush_soon()  # the reconnect
    await asyncio.sleep(0.01)
    assert sent == [CommandResponseMessage(response=response)]
    receipt = CommandReceipt(command_id=CID, lease_id=LID, of="response", ok=True)
    assert outbox.settle(receipt) and len(outbox) == 0
    assert not outbox.settle(receipt)  # a second receipt for it changes nothing


async def test_a_receipt_request_cancelled_as_its_receipt_arrives_is_cancelled() -> None:
    receipts = Receipts()

    async def send(message: AgentMessage) -> bool:
        return True

    renew = CommandReceipt(command_id=CID, lease_id=LID, of="renew", ok=True)
    waiting = asyncio.create_task(
        receipts.request(send, CommandRenew(command_id=CID, lease_id=LID), (CID, LID), "renew", 5.0)
    )
    await asyncio.sleep(0)  # sent; now awaiting the receipt
    assert receipts.deliver(renew)
    waiting.cancel()  # in the same loop turn: the handler finished, the keeper is stopped
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_keeper_cancelled_as_it_is_woken_stops() -> None:
    manager = ScriptedManager()
    keeper = LeaseKeeper(lease(ttl=30.0), manager)
    keeping = asyncio.create_task(keeper.keep())
    await asyncio.sleep(0.01)  # sleeping until a third of the TTL
    keeper.wake()
    keeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(keeping, 1.0)
    assert manager.calls == []
