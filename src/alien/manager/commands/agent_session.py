"""The commands side of one agent WebSocket (``/v1/agent/connect``).

An agent that lists ``commands`` in ``hello.capabilities`` becomes a link: from then on new
commands of its deployment are handed to it the moment they are created, and on (re)connect it is
sent every command it should be working on. Its ``command_ack`` / ``command_renew`` /
``command_response`` messages are applied by the writer without holding up the socket's receive
loop (so many responses batch into one transaction); each is answered with a
``command_receipt`` once committed. Offers, cancels and receipts leave through the link's queue,
in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from alien.errors import AlienError
from alien.manager.commands.center import CommandCenter
from alien.manager.commands.links import AgentLink
from alien.manager.commands.ops import AgentCommandMessage, Receiver
from alien.protocol.agent_channel import (
    CAPABILITY_COMMANDS,
    ChannelError,
    CommandReceipt,
    Hello,
    ManagerMessage,
)

log = logging.getLogger("alien.manager.commands")

Send = Callable[[ManagerMessage], Awaitable[None]]


def http_base_url(ws_base_url: str) -> str:
    """``ws://host:port/`` (how the agent reached us) → ``http://host:port``."""
    scheme, _, rest = str(ws_base_url).partition("://")
    http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{http}://{rest}".rstrip("/")


class AgentCommandSession:
    def __init__(
        self, center: CommandCenter, deployment_id: str, base_url: str, send: Send
    ) -> None:
        self._center = center
        self._deployment_id = deployment_id
        self._base_url = base_url
        self._send = send
        self._link: AgentLink | None = None
        self._pump: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()

    async def start(self, hello: Hello) -> None:
        """After ``welcome``: become a link if the agent takes commands, and catch it up."""
        if CAPABILITY_COMMANDS not in hello.capabilities or self._link is not None:
            return
        link = AgentLink(self._deployment_id, self._base_url)
        self._link = link
        self._pump = asyncio.create_task(link.pump(self._send), name="command pump")
        self._pump.add_done_callback(_consume)
        self._center.links.attach(link)
        receiver = Receiver(base_url=link.base_url, link=link)
        await self._center.writer.run(self._center.ops.attach(self._deployment_id, receiver))

    def received(self, message: AgentCommandMessage) -> None:
        """Apply a command message; its receipt is sent once the change is committed."""
        self._center.agent_message(self._deployment_id, message).add_done_callback(self._reply)

    def _reply(self, future: asyncio.Future[CommandReceipt]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        message: ManagerMessage
        if error is None:
            message = future.result()
        else:
            code = error.code if isinstance(error, AlienError) else "INTERNAL"
            message = ChannelError(code=code, message="the command message could not be stored")
        if self._link is not None:
            self._link.push(message)
            return
        task = asyncio.create_task(self._send(message))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)
        task.add_done_callback(_consume)

    async def close(self) -> None:
        if self._link is not None:
            self._center.links.detach(self._link)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump


def _consume(task: asyncio.Task[None]) -> None:
    """A send that failed because the socket closed is not worth a warning: the agent
    reconnects and is caught up."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("agent send failed: %s", type(task.exception()).__name__)
