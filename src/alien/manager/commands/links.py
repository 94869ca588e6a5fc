"""Agents' open WebSockets that take commands (presence in memory, nothing else).

The writer asks "does deployment X have an agent taking commands right now?" to decide
whether a new command is handed over at once (``dispatched``) or waits for a lease request
(``pending``); after the commit, its effects ``push`` the message onto the link's queue, which
the connection's pump sends in order. A link that vanished before its message went out loses
nothing: the command's lease runs out and the sweeper offers it again, and an agent that
reconnects is sent every command it holds at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from alien.protocol.agent_channel import ManagerMessage


class AgentLink:
    """One agent connection taking commands. ``base_url`` is how that agent reaches us (the
    signed URLs in its deliveries use it)."""

    def __init__(self, deployment_id: str, base_url: str) -> None:
        self.deployment_id = deployment_id
        self.base_url = base_url
        self._queue: asyncio.Queue[ManagerMessage] = asyncio.Queue()

    def push(self, message: ManagerMessage) -> None:
        """Queue ``message`` for the agent (on the event loop; never blocks)."""
        self._queue.put_nowait(message)

    async def pump(self, send: Callable[[ManagerMessage], Awaitable[None]]) -> None:
        """Send queued messages in order until cancelled (or ``send`` fails)."""
        while True:
            await send(await self._queue.get())


class LinkRegistry:
    """Links by deployment; read by the writer (on its thread, for PostgreSQL), changed on the
    event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: dict[str, list[AgentLink]] = {}

    def attach(self, link: AgentLink) -> None:
        with self._lock:
            self._links.setdefault(link.deployment_id, []).append(link)

    def detach(self, link: AgentLink) -> None:
        with self._lock:
            links = self._links.get(link.deployment_id, [])
            if link in links:
                links.remove(link)
            if not links:
                self._links.pop(link.deployment_id, None)

    def current(self, deployment_id: str) -> AgentLink | None:
        """The newest link of the deployment (an agent that reconnected replaces its old one)."""
        with self._lock:
            links = self._links.get(deployment_id)
            return links[-1] if links else None

    def all(self, deployment_id: str) -> list[AgentLink]:
        with self._lock:
            return list(self._links.get(deployment_id, ()))
