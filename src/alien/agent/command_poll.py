"""Commands for an agent without a WebSocket: the long-poll lease request.

Over the WebSocket the manager hands commands to the agent the moment they are created. When the
agent fell back to HTTPS long-polling (a proxy that refuses WebSockets), nothing can be pushed,
so while the link runs on the ``poll`` transport this loop keeps one lease request open
(``POST /v1/agent/commands/lease``): the manager answers it as soon as a command is waiting
(leased to this agent under a fresh lease, up to ``max`` at once) — still no poll interval in
the path, one request held open. It asks for no more commands than the runner has free slots,
so a busy agent does not hoard leases it cannot work on yet. Acks, renewals and responses go
through the link (``POST /v1/agent/status``) like every other agent message. Each request lists
the leases the agent holds; one it lost meanwhile (cancelled, expired) comes back as a
``command_cancel`` in the answer (the manager wakes the open request for it). While every slot
is busy the request asks for no commands (``max=0``): it can only bring such cancels, at once,
and it is dropped for one that asks for commands as soon as a slot frees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from alien.agent.link import ManagerLink
from alien.client.calls import LONG_POLL_SLACK, Call, decode_model
from alien.errors import AlienError
from alien.protocol.agent_channel import AgentLeaseRequest, AgentPoll, HeldLease, ManagerMessage

log = logging.getLogger("alien.agent.commands")

LEASE_WAIT = 25.0
MAX_PER_LEASE = 100
"""The most commands the manager leases in one answer."""
RETRY_AFTER = 1.0


def lease_commands(wait: float, limit: int, held: Sequence[HeldLease] = ()) -> Call[AgentPoll]:
    """``POST /v1/agent/commands/lease``: up to ``limit`` waiting commands, held ``wait`` s, and
    a cancel for each of the ``held`` leases that is lost."""
    return Call(
        "POST",
        "/v1/agent/commands/lease",
        decode_model(AgentPoll),
        params={"wait": wait, "max": limit},
        json=AgentLeaseRequest(held=tuple(held)).model_dump(mode="json"),
        timeout=wait + LONG_POLL_SLACK,
    )


class CommandPoller:
    def __init__(
        self,
        link: ManagerLink,
        deliver: Callable[[ManagerMessage], None],
        capacity: Callable[[], Awaitable[int]],
        held: Callable[[], Sequence[HeldLease]],
        free: Callable[[], int],
        *,
        wait: float = LEASE_WAIT,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        """``deliver`` receives each message of a lease answer (deliveries and cancels);
        ``capacity`` waits for free slots and answers how many there are, ``free`` says how many
        there are now; ``held`` lists the leases whose handlers run and were not told to stop
        (asked again for every request)."""
        self._link = link
        self._deliver = deliver
        self._capacity = capacity
        self._held = held
        self._free = free
        self._cancels_only = True  # the manager takes max=0 (one from before it did: 422)
        self._wait = wait
        self._retry_after = retry_after
        self._changed = asyncio.Event()

    def connection_changed(self) -> None:
        self._changed.set()

    def _polling(self) -> bool:
        return self._link.connected and self._link.transport == "poll"

    async def run(self) -> None:
        """Lease commands while the link runs on the ``poll`` transport, until cancelled."""
        while True:
            if not self._polling():
                await self._changed.wait()
                self._changed.clear()
                continue
            free = self._free()
            if free:
                await self._lease(min(MAX_PER_LEASE, free))
            else:
                await self._while_busy()

    async def _while_busy(self) -> None:
        """Every slot is busy: hold open a request that can bring only cancels (``max=0``)
        until it is answered or a slot frees (a request for commands then takes its place)."""
        if not self._cancels_only:
            await self._capacity()
            return
        lease = asyncio.create_task(self._lease(0))
        freed = asyncio.create_task(self._capacity())
        try:
            await asyncio.wait({lease, freed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lease, freed):
                task.cancel()
            # A cancel the dropped request was about to bring is not lost: the manager works
            # cancels out from the stored commands, and the next request lists the same leases.
            await asyncio.gather(lease, freed, return_exceptions=True)

    async def _lease(self, limit: int) -> None:
        try:
            answer = await self._link.client.call(lease_commands(self._wait, limit, self._held()))
            for message in answer.messages:
                self._deliver(message)
        except AlienError as exc:
            if limit == 0 and exc.field == "max":
                self._cancels_only = False  # an older manager: wait for a slot instead
                return
            log.info("could not lease commands: %s", exc.message)
            await asyncio.sleep(self._retry_after)
        except Exception:  # a bug must not end the agent: retry, its functions keep serving
            log.exception("leasing commands failed unexpectedly")
            await asyncio.sleep(self._retry_after)
