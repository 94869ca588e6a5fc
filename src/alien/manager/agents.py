"""Which agent serves each deployment through this manager process right now (in memory only).

Presence answers "is deployment X connected?" for the API. It also keeps a deployment served by
one agent *process* at a time: an agent sends a random id of its process with every request
(:data:`~alien.protocol.agent_channel.AGENT_INSTANCE_HEADER`), and a channel opened by another
instance while the first one still holds one is refused (:class:`AgentConflict`, 409). Two live
agents with one deployment token — a cloned VM or state directory, a leaked token — would
otherwise both deploy every release, report over each other, and take turns being handed
commands: a command sent again to one of them on reconnect would run on both.

The holder keeps the deployment while one of its channels is open (a WebSocket, or a long poll
in flight), and a long-polling holder for :data:`POLL_GAP` seconds after its last request ended
(the short gap between two polls). An agent restarted on its machine is a new instance: its old
WebSocket closes with the old process, so the new one is let in at once. Only when the old one
dies without its connection closing (the machine lost) does the newcomer wait, until the
WebSocket's pings give up on the old connection (under a minute). Requests without an instance
id (agents older than this check) count as one instance of their own.

Nothing that must survive a restart lives here: after one, the first agent to connect holds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from alien.errors import Conflict
from alien.protocol.agent_channel import AGENT_CONFLICT

POLL_GAP = 10.0
"""Seconds a long-polling agent keeps its deployment between two of its requests."""
CONFLICT_MEMORY = 600.0
"""Seconds a refused agent is shown on its deployment (``agent_conflict``) after it last tried."""
AUDITED_PER_DEPLOYMENT = 16
"""Refused instances remembered per deployment as audited already (each is audited once)."""

WEBSOCKET = "websocket"
POLL = "poll"


class AgentConflict(Conflict):
    code = AGENT_CONFLICT
    first: bool = True
    """Whether this instance was not refused for the deployment before (then it is audited)."""


@dataclass
class _Holder:
    instance: str | None
    peer: str | None
    transport: str
    since: datetime
    open: int = 0
    last_seen: float = 0.0  # monotonic: when its last channel closed


@dataclass(frozen=True)
class ConnectedAgent:
    """The agent process holding a deployment: its instance id, address, transport, since."""

    instance: str | None
    peer: str | None
    transport: str
    since: datetime


@dataclass(frozen=True)
class RefusedAgent:
    """The latest agent refused for a deployment: who, from where, when, how often, and which
    agent held the deployment then (it may have changed hands since)."""

    instance: str | None
    peer: str | None
    first_at: datetime
    last_at: datetime
    attempts: int
    holder_instance: str | None
    holder_peer: str | None


class AgentRegistry:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, _Holder] = {}
        self._refused: dict[str, RefusedAgent] = {}
        self._audited: dict[str, deque[str | None]] = {}
        self._monotonic = monotonic

    @contextmanager
    def channel(
        self,
        deployment_id: str,
        *,
        instance: str | None = None,
        peer: str | None = None,
        transport: str = WEBSOCKET,
    ) -> Iterator[None]:
        """Mark ``deployment_id`` connected through ``instance`` during the ``with`` block;
        :class:`AgentConflict` at once if another instance holds it."""
        holder = self._claim(deployment_id, instance, peer, transport)
        try:
            yield
        finally:
            with self._lock:
                holder.open -= 1
                holder.last_seen = self._monotonic()
                closed = holder.open == 0 and holder.transport == WEBSOCKET
                if closed and self._holders.get(deployment_id) is holder:
                    del self._holders[deployment_id]

    def _claim(
        self, deployment_id: str, instance: str | None, peer: str | None, transport: str
    ) -> _Holder:
        with self._lock:
            holder = self._holders.get(deployment_id)
            if holder is not None and holder.instance != instance and self._holds(holder):
                raise self._refuse(deployment_id, holder, instance, peer)
            if holder is None or holder.instance != instance:
                holder = _Holder(instance, peer, transport, since=datetime.now(UTC))
                self._holders[deployment_id] = holder
            holder.peer, holder.transport = peer, transport
            holder.open += 1
            return holder

    def _holds(self, holder: _Holder) -> bool:
        if holder.open > 0:
            return True
        return holder.transport == POLL and self._monotonic() - holder.last_seen < POLL_GAP

    def _refuse(
        self, deployment_id: str, holder: _Holder, instance: str | None, peer: str | None
    ) -> AgentConflict:
        now = datetime.now(UTC)
        seen = self._refused.get(deployment_id)
        same = seen is not None and seen.instance == instance
        self._refused[deployment_id] = RefusedAgent(
            instance=instance,
            peer=peer,
            first_at=seen.first_at if same and seen else now,
            last_at=now,
            attempts=seen.attempts + 1 if same and seen else 1,
            holder_instance=holder.instance,
            holder_peer=holder.peer,
        )
        since = f"{holder.since:%Y-%m-%dT%H:%M:%SZ}"
        conflict = AgentConflict(
            f"another agent serves this deployment (instance {holder.instance or 'unnamed'}"
            f" from {holder.peer or 'an unknown address'}, since {since}):"
            " two agents with one deployment token would both deploy its releases and run its"
            " commands; stop one of them (this one is let in once the other's connection ends)",
            field="agent",
            details={
                "holder": {
                    "instance": holder.instance,
                    "peer": holder.peer,
                    "transport": holder.transport,
                    "since": holder.since.isoformat(),
                },
                "refused": {"instance": instance, "peer": peer},
            },
        )
        audited = self._audited.setdefault(deployment_id, deque(maxlen=AUDITED_PER_DEPLOYMENT))
        conflict.first = instance not in audited
        if conflict.first:
            audited.append(instance)
        return conflict

    def connected_agent(self, deployment_id: str) -> ConnectedAgent | None:
        """The agent connected for ``deployment_id`` now (a channel open), or ``None``."""
        with self._lock:
            holder = self._holders.get(deployment_id)
            if holder is None or holder.open <= 0:
                return None
            return ConnectedAgent(holder.instance, holder.peer, holder.transport, holder.since)

    def refused(self, deployment_id: str) -> RefusedAgent | None:
        """The latest agent refused for ``deployment_id`` while another one held it, if it
        tried within :data:`CONFLICT_MEMORY` seconds."""
        with self._lock:
            seen = self._refused.get(deployment_id)
            if seen is None:
                return None
            if (datetime.now(UTC) - seen.last_at).total_seconds() > CONFLICT_MEMORY:
                del self._refused[deployment_id]
                return None
            return seen
