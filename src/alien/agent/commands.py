"""``CommandRunner``: the agent runs the remote commands its manager hands it.

The agent lists ``commands`` in its ``hello``; from then on the manager pushes a ``command``
message (:class:`~alien.protocol.agent_channel.CommandOffer`) over the open WebSocket the moment
a command is created — or, on the long-poll fallback, leases waiting ones to
:mod:`alien.agent.command_poll`. For each delivery:

1. a :class:`~alien.agent.command_lease.LeaseKeeper` holds its lease from the moment it arrives
   (ack at a third of the TTL if the handler still runs, then renewals);
2. it waits for one of ``concurrency`` slots (64 by default): many commands run at once, and a
   burst queues here instead of overwhelming the function processes;
3. params given by ``params_ref`` are downloaded to a file and verified
   (:mod:`.command_payloads`), then streamed from there to the function;
4. the command is invoked on its target function through the platform's
   :class:`~alien.platforms.dispatch.CommandDispatcher` (``LocalDispatcher``); a result too large
   to travel inline is uploaded to the delivery's signed URL (``offload``);
5. the response goes to the :class:`~alien.agent.command_receipts.Outbox`, which keeps it until
   the manager's receipt (sent again after a reconnect: never lost, never applied twice).

``command_cancel`` (pushed over the WebSocket, or in a long-poll lease answer) — and a lease the
keeper lost — stop the handler through
``dispatcher.cancel`` (the handler sees ``ctx.cancelled``) and drop its response. A delivery the
manager sends again (it re-sends every held command when the agent reconnects) is recognised by
its lease: the same lease is left running (and its lease renewed at once), an answered one gets
its response again, a *new* lease for a command still running here means the old lease is gone
(it is stopped, then the new one runs: the runtime runs one command id once at a time).

Nothing here blocks the link's receive loop: messages are sorted synchronously and every piece
of work is a task, so heartbeats and status reports never wait behind a command.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic

from alien.agent.command_lease import Lease, LeaseKeeper, LeaseRequest
from alien.agent.command_payloads import CommandPayloads
from alien.agent.command_poll import CommandPoller
from alien.agent.command_receipts import Key, Outbox, Receipts
from alien.agent.link import ManagerLink
from alien.errors import AlienError
from alien.platforms.dispatch import CommandDispatcher
from alien.protocol.agent_channel import (
    CommandAck,
    CommandCancel,
    CommandOffer,
    CommandReceipt,
    CommandRenew,
    HeldLease,
    ManagerMessage,
)
from alien.protocol.command_messages import STALE_LEASE, CommandResponse

log = logging.getLogger("alien.agent.commands")

DEFAULT_CONCURRENCY = 64
FINISHED_MEMORY = 10_000
"""Deliveries remembered after they ended, so a late duplicate offer is not run again."""
MAX_MESSAGE = 4096
AGENT_ERROR = "AGENT_ERROR"
"""The agent itself failed while running a command (a bug); the message names the exception."""


@dataclass(eq=False)
class _Delivery:
    offer: CommandOffer
    keeper: LeaseKeeper
    work: asyncio.Task[CommandResponse | None] | None = None
    invoking: bool = False
    stopped: str | None = None
    """Why the agent stopped it (a command message code); its response is then not sent."""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> Key:
        return (self.offer.envelope.id, self.offer.envelope.lease_id)


class CommandRunner:
    """Runs the deliveries the link receives on ``dispatcher`` (see the module docstring)."""

    def __init__(
        self,
        link: ManagerLink,
        dispatcher: CommandDispatcher,
        payloads: CommandPayloads,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        include_traceback: bool = False,
    ) -> None:
        """``include_traceback``: the customer's opt-in (``alien-deploy --command-tracebacks``)
        to ship a failed handler's traceback in its failure details."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.link = link
        self.dispatcher = dispatcher
        self.payloads = payloads
        self.concurrency = concurrency
        self.include_traceback = include_traceback
        self.receipts = Receipts()
        self.outbox = Outbox(link.send)
        self.poller = CommandPoller(
            link, self.on_message, self._capacity, self._held_leases, self._free_slots
        )
        self.known: dict[str, list[str]] = {}
        """Command names per function, as last listed by the dispatcher (the status detail)."""
        self._slots = asyncio.Semaphore(concurrency)
        self._held: dict[str, _Delivery] = {}
        self._finished: OrderedDict[Key, None] = OrderedDict()
        self._freed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach(self) -> None:
        """Take command messages from the link and follow its connection."""
        self.link.on_other_message.append(self.on_message)
        self.link.on_connection_change.append(self.on_connection_change)

    async def run(self) -> None:
        """Resend unanswered responses and lease over long-poll until cancelled; then stop every
        delivery (their leases run out and the manager offers them again)."""
        try:
            await asyncio.gather(self.outbox.run(), self.poller.run())
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.payloads.aclose()

    async def refresh_known(self) -> dict[str, list[str]]:
        """List the command names of every running function again (after a deploy)."""
        self.known = {
            fid: sorted(names) for fid, names in (await self.dispatcher.known_commands()).items()
        }
        return self.known

    # --- messages from the link (synchronous: never block the receive loop) ------------------

    def on_message(self, message: ManagerMessage) -> None:
        try:
            if isinstance(message, CommandOffer):
                self.take(message)
            elif isinstance(message, CommandCancel):
                self._cancel(message)
            elif isinstance(message, CommandReceipt):
                if message.of == "response":
                    self.outbox.settle(message)
                else:
                    self.receipts.deliver(message)
        except Exception:  # a bug here must not drop the connection (and every other command)
            log.exception("could not handle a %s message", message.type)

    def on_connection_change(self) -> None:
        self.poller.connection_changed()
        if self.link.connected:
            self.outbox.flush_soon()
            for delivery in self._held.values():
                delivery.keeper.wake()

    def take(self, offer: CommandOffer) -> None:
        """Accept one delivery (see the module docstring for repeated ones)."""
        envelope = offer.envelope
        key = (envelope.id, envelope.lease_id)
        if key in self.outbox:
            self._spawn(self.outbox.resend(key))
            return
        if key in self._finished:
            return
        current = self._held.get(envelope.id)
        if current is None:
            self._start(offer)
        elif current.key == key:
            current.keeper.wake()  # offered again after a reconnect: still ours, renew now
        else:
            self._spawn(self._replace(current, offer))

    def _cancel(self, message: CommandCancel) -> None:
        delivery = self._held.get(message.command_id)
        if delivery is None or message.lease_id not in (None, delivery.key[1]):
            return
        log.info("command %s: %s (%s)", message.command_id, message.message, message.code)
        self._spawn(self._stop(delivery, message.code))

    # --- one delivery ------------------------------------------------------------------------

    def _start(self, offer: CommandOffer) -> None:
        envelope = offer.envelope
        lease = Lease(envelope.id, envelope.lease_id, envelope.lease_expires_at, envelope.deadline)
        delivery = _Delivery(offer, LeaseKeeper(lease, self._lease_request(lease)))
        self._held[envelope.id] = delivery
        self._spawn(self._serve(delivery))

    def _lease_request(self, lease: Lease) -> LeaseRequest:
        key = (lease.command_id, lease.lease_id)

        async def request(kind: Literal["ack", "renew"], timeout: float) -> CommandReceipt | None:
            kinds = {"ack": CommandAck, "renew": CommandRenew}
            message = kinds[kind](command_id=lease.command_id, lease_id=lease.lease_id)
            return await self.receipts.request(self.link.send, message, key, kind, timeout)

        return request

    async def _serve(self, delivery: _Delivery) -> None:
        keeper = asyncio.create_task(delivery.keeper.keep())
        work = delivery.work = asyncio.create_task(self._work(delivery))
        response: CommandResponse | None = None
        try:
            await asyncio.wait({keeper, work}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                lost = keeper.result()
                log.warning(
                    "command %s: lease lost (%s): %s", delivery.key[0], lost.code, lost.message
                )
                await self._stop(delivery, lost.code)
                await asyncio.wait({work})
            if not work.cancelled() and work.exception() is None and delivery.stopped is None:
                response = work.result()
            elif not work.cancelled() and work.exception() is not None:
                log.error(
                    "command %s failed in the agent", delivery.key[0], exc_info=work.exception()
                )
        finally:
            for task in (keeper, work):
                task.cancel()
            await asyncio.gather(keeper, work, return_exceptions=True)
            self._forget(delivery)
        if response is not None:
            await self.outbox.put(response)

    async def _work(self, delivery: _Delivery) -> CommandResponse | None:
        async with self._slots:
            if delivery.stopped is not None:
                return None
            envelope, target = delivery.offer.envelope, delivery.offer.target
            params: Path | None = None
            try:
                if envelope.params_ref is not None:
                    params = await self.payloads.download(envelope.params_ref)
                delivery.invoking = True
                return await self.dispatcher.invoke(
                    target,
                    envelope,
                    params,
                    offload=self.payloads.offload_to(delivery.offer.result_upload_url),
                    include_traceback=self.include_traceback,
                )
            except AlienError as exc:
                return _failure(delivery, exc.code, exc.message, _details(exc))
            except Exception as exc:  # a bug here must still end the command clearly
                log.exception("command %s: the agent failed running it", envelope.id)
                return _failure(delivery, AGENT_ERROR, f"the agent failed: {type(exc).__name__}")
            finally:
                if params is not None:
                    params.unlink(missing_ok=True)

    async def _stop(self, delivery: _Delivery, code: str) -> None:
        """Stop ``delivery``'s handler (told through its context) and drop its response."""
        if delivery.stopped is not None:
            return
        delivery.stopped = code
        work = delivery.work
        if work is None or work.done():
            return
        told = False
        if delivery.invoking:
            try:
                told = await self.dispatcher.cancel(delivery.offer.target, delivery.key[0])
            except AlienError as exc:
                log.info("could not cancel %s: %s", delivery.key[0], exc.message)
        if not told:
            work.cancel()  # not started yet, or not reachable: dropping the call stops it

    async def _replace(self, current: _Delivery, offer: CommandOffer) -> None:
        """A new lease for a command still running here: the old lease is gone."""
        await self._stop(current, STALE_LEASE)
        await current.done.wait()
        self.take(offer)

    def _forget(self, delivery: _Delivery) -> None:
        if self._held.get(delivery.key[0]) is delivery:
            del self._held[delivery.key[0]]
        self._finished[delivery.key] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        delivery.done.set()
        self._freed.set()

    def _held_leases(self) -> list[HeldLease]:
        """The leases whose handlers run here and were not told to stop."""
        return [
            HeldLease(command_id=command_id, lease_id=delivery.key[1])
            for command_id, delivery in self._held.items()
            if delivery.stopped is None
        ]

    def _free_slots(self) -> int:
        return max(0, self.concurrency - len(self._held))

    async def _capacity(self) -> int:
        """Wait until fewer than ``concurrency`` deliveries are held; how many more fit."""
        while len(self._held) >= self.concurrency:
            self._freed.clear()
            await self._freed.wait()
        return self.concurrency - len(self._held)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a command task failed", exc_info=task.exception())


def _details(exc: AlienError) -> dict[str, Any]:
    details = dict(exc.details)
    if exc.field is not None:
        details.setdefault("field", exc.field)
    return details


def _failure(
    delivery: _Delivery, code: str, message: str, details: dict[str, Any] | None = None
) -> CommandResponse:
    command_id, lease_id = delivery.key
    text = " ".join(message.split())[:MAX_MESSAGE] or code
    try:
        return CommandResponse.failure(command_id, lease_id, code, text, details)
    except pydantic.ValidationError:  # details that do not fit the wire format; the rest does
        return CommandResponse.failure(command_id, lease_id, code, text)
