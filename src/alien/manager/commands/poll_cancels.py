"""Cancellations waiting for agents that long-poll (no WebSocket to push them on).

Over a WebSocket, a command whose lease the agent lost (cancelled, expired, failed) is followed at
once by a ``command_cancel``. An agent on the HTTPS fallback has no such channel; it used to learn
of it only when its next renewal was refused — up to a third of the lease later, and not at all
for a handler still within its first third. So the cancel is kept here, per deployment, and the
agent's open lease request (``POST /v1/agent/commands/lease``) is woken to hand it over with its
answer. In memory, like agent links: after a manager restart the refused renewal still tells the
agent. Bounded per deployment (the oldest go first: a refused renewal covers them too).
"""

from __future__ import annotations

from collections import deque

from alien.protocol.agent_channel import CommandCancel

MAX_PER_DEPLOYMENT = 256


class PollCancels:
    """Cancels by deployment, until its next lease request collects them."""

    def __init__(self, limit: int = MAX_PER_DEPLOYMENT) -> None:
        self._limit = limit
        self._waiting: dict[str, deque[CommandCancel]] = {}

    def add(self, deployment_id: str, message: CommandCancel) -> None:
        waiting = self._waiting.setdefault(deployment_id, deque(maxlen=self._limit))
        waiting.append(message)

    def take(self, deployment_id: str) -> list[CommandCancel]:
        """Every cancel waiting for ``deployment_id``, oldest first (now no longer waiting)."""
        return list(self._waiting.pop(deployment_id, ()))
