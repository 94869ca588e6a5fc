"""``CommandCenter``: the commands subsystem of one manager process, used by the API routes.

It owns the writer, the sweeper task, the signed-URL key, the payload store and the
in-memory registries (agent links, push dispatchers, waiters). ``start``/``stop`` run in the app's
lifespan. Reads go straight to the database in the thread pool; every write is an operation of
:mod:`.ops` run by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from alien.errors import AlienError, NotFound
from alien.manager.auth import Action, Principal, authorize
from alien.manager.blobs import BlobStore, StagedBlob
from alien.manager.commands import records
from alien.manager.commands.dispatch import Dispatcher, DispatcherRegistry
from alien.manager.commands.links import LinkRegistry
from alien.manager.commands.ops import (
    AgentCommandMessage,
    CommandOps,
    Created,
    Receiver,
    caller_of,
    pending_key,
)
from alien.manager.commands.records import COLUMNS, TABLE, CommandSnapshot
from alien.manager.commands.retention import RetentionJanitor
from alien.manager.commands.schemas import CommandCreate, CommandOut
from alien.manager.commands.settings import CommandSettings
from alien.manager.commands.signing import UrlSigner
from alien.manager.commands.sweeper import Sweeper
from alien.manager.commands.targets import TargetCache
from alien.manager.commands.views import command_out
from alien.manager.commands.waiters import Waiters
from alien.manager.commands.writer import BatchWriter
from alien.manager.core import ManagerCore
from alien.manager.ids import new_id
from alien.manager.models import Deployment
from alien.manager.services.audit import AuditLog
from alien.manager.services.deployments import resolve_deployment
from alien.manager.services.groups import get_group
from alien.protocol.agent_channel import (
    CommandAck,
    CommandCancel,
    CommandOffer,
    CommandReceipt,
    CommandRenew,
    CommandResponseMessage,
    HeldLease,
)
from alien.protocol.audit import Actor
from alien.protocol.command_messages import COMMAND_NOT_FOUND, CommandResponse
from alien.protocol.commands import CommandState

T = TypeVar("T")
PAYLOAD_DIR = "command-blobs"


class CommandCenter:
    def __init__(self, core: ManagerCore, settings: CommandSettings | None = None) -> None:
        self.core = core
        self.settings = settings or CommandSettings.from_env()
        self.signer = UrlSigner.load_or_create(core.settings.data_dir)
        self.payloads = BlobStore(core.settings.data_dir / PAYLOAD_DIR)
        self.links = LinkRegistry()
        self.dispatchers = DispatcherRegistry()
        self.waiters = Waiters()
        core.on_stopping.append(self.waiters.drain)
        hooks = records.StoreHooks()
        self.live = hooks.live
        self.writer = BatchWriter(
            core.db,
            begin=hooks.begin,
            finish=hooks.finish,
            committed=hooks.committed,
        )
        self.sweeper = Sweeper(lambda: self.writer.run(self.ops.sweep()))
        self.janitor = RetentionJanitor(
            self.writer.run,
            self.payloads,
            payload_retention=self.settings.payload_retention,
            command_retention=self.settings.command_retention,
        )
        self.ops = CommandOps(
            settings=self.settings,
            signer=self.signer,
            links=self.links,
            dispatchers=self.dispatchers,
            targets=TargetCache(),
            hub=core.hub,
            publish=self.waiters.publish,
            hint=self.sweeper.hint,
            channel_for=self.channel,
            audit=AuditLog.in_data_dir(core.settings.data_dir),
            blobs=self.payloads,
        )
        self._sweeper_task: asyncio.Task[None] | None = None
        self._janitor_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start(self._loop)
        self._sweeper_task = asyncio.create_task(self.sweeper.run(), name="command sweeper")
        self._janitor_task = asyncio.create_task(self.janitor.run(), name="command retention")

    async def stop(self) -> None:
        for task in (self._sweeper_task, self._janitor_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper_task = self._janitor_task = None
        await asyncio.to_thread(self.writer.stop)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CommandCenter]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    # --- callers -----------------------------------------------------------------------------

    async def create(self, token: str, body: CommandCreate, wait: float = 0.0) -> Created:
        """Create (or replay) a command; with ``wait`` > 0 return as soon as it ended, or after
        ``wait`` seconds with its state then. The waiter is registered before the command exists,
        so a response racing the create's own answer is never missed."""
        command_id = new_id("cmd")
        with self.waiters.watch(command_id) as ended:
            created = await self.writer.run(self.ops.create(token, body, command_id))
            if wait <= 0 or created.snapshot.terminal:
                return created
            if created.replayed:
                snap = await self.wait(token, created.snapshot.id, wait)
                return Created(snap, replayed=True)
            snap = await _first(ended, wait, None)
            if snap is None:
                snap = await self.get(token, command_id)
            return Created(snap, replayed=False)

    async def get(self, token: str, command_id: str) -> CommandSnapshot:
        return await run_in_threadpool(self._read, token, command_id)

    async def wait(self, token: str, command_id: str, timeout: float) -> CommandSnapshot:
        """The command once it ended, or as it is after ``timeout`` seconds."""
        with self.waiters.watch(command_id) as ended:
            snap = await self.get(token, command_id)
            if snap.terminal or timeout <= 0:
                return snap
            ended_snap = await _first(ended, timeout, None)
            return ended_snap if ended_snap is not None else await self.get(token, command_id)

    async def cancel(self, token: str, command_id: str, reason: str | None) -> CommandSnapshot:
        return await self.writer.run(self.ops.cancel(token, command_id, reason))

    async def suspend(self, deployment_id: str, actor: Actor, reason: str) -> list[str]:
        """Cancel the deployment's running commands (vendor access was suspended)."""
        return await self.writer.run(self.ops.suspend(deployment_id, actor, reason))

    async def decided(self, command_id: str, actor: Actor, *, approved: bool) -> CommandSnapshot:
        """A command's approval completed: hand it out, or cancel it if it was denied."""
        return await self.writer.run(self.ops.decided(command_id, actor, approved=approved))

    async def resume(self, deployment_id: str) -> int:
        """Vendor access is back: offer the deployment's pending commands to its receiver."""
        receiver = self.ops.receiver(deployment_id)
        if receiver is None:
            self.core.hub.publish(pending_key(deployment_id))  # a long-polling agent leases
            return 0
        return await self.writer.run(self.ops.attach(deployment_id, receiver))

    async def store_result(
        self, command_id: str, deployment_id: str, lease_id: str, staged: StagedBlob
    ) -> None:
        """Place a staged result upload and record it under its lease. Should the record not
        commit, the file it placed is removed again unless a row names it: retention only
        deletes files that rows name, so nothing else ever would."""
        try:
            await self.writer.run(
                self.ops.record_result_payload(command_id, deployment_id, lease_id, staged)
            )
        except AlienError:
            sha256 = staged.info.digest.removeprefix("sha256:")
            await self.writer.run(self.ops.discard_unnamed(sha256))
            raise

    def _reader(self, session: Session, token: str) -> Principal:
        """The caller, if they may read commands; a known one refused is audited."""
        return caller_of(
            session, token, Action.COMMANDS_READ, self.ops.audit, write=self.core.db.write
        )

    def _read(self, token: str, command_id: str) -> CommandSnapshot:
        with self.core.db.read() as session:
            caller = self._reader(session, token)
            snap = records.read(session, command_id)
            if snap is None:
                raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
            authorize(
                caller,
                Action.COMMANDS_READ,
                deployments=[snap.deployment_id],
                missing=NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND),
            )
            return snap

    def list(
        self,
        token: str,
        *,
        deployment: str | None,
        group: str | None,
        states: list[CommandState] | None,
        command: str | None,
        before: str | None,
        limit: int,
    ) -> list[CommandSnapshot]:
        """Newest first (ids are time-ordered); ``before`` pages to older ones; ``deployment``
        (a reference) and ``group`` (id or name) narrow it down."""
        query = select(TABLE).order_by(COLUMNS.id.desc()).limit(limit)
        if states:
            query = query.where(COLUMNS.state.in_([s.value for s in states]))
        if command is not None:
            query = query.where(COLUMNS.command == command)
        if before is not None:
            query = query.where(COLUMNS.id < before)
        with self.core.db.read() as session:
            caller = self._reader(session, token)
            scope = caller.groups  # a group-scoped key sees its groups' commands only
            if deployment is not None:
                dep = resolve_deployment(session, deployment, groups=scope)
                authorize(caller, Action.COMMANDS_READ, deployments=[dep.id])
                query = query.where(COLUMNS.deployment_id == dep.id)
            if group is not None:
                members = select(Deployment.id).where(
                    Deployment.group_id == get_group(session, group, groups=scope).id
                )
                query = query.where(COLUMNS.deployment_id.in_(members))
            if scope is not None:
                visible = select(Deployment.id).where(Deployment.group_id.in_(scope))
                query = query.where(COLUMNS.deployment_id.in_(visible))
            return records.query(session, query)

    def view(self, snap: CommandSnapshot, base_url: str, *, detail: bool = True) -> CommandOut:
        return command_out(
            snap,
            now=datetime.now(UTC),
            signer=self.signer,
            base_url=base_url,
            url_seconds=self.settings.caller_url_seconds,
            detail=detail,
        )

    # --- whoever runs handlers ---------------------------------------------------------------

    def agent_message(
        self, deployment_id: str, message: AgentCommandMessage
    ) -> asyncio.Future[CommandReceipt]:
        """Apply an agent's command message; the future resolves with the receipt to send."""
        return self.writer.submit(self.ops.agent_message(deployment_id, message))

    async def lease_pending(
        self,
        deployment_id: str,
        base_url: str,
        *,
        limit: int,
        wait: float,
        held: Sequence[HeldLease] = (),
    ) -> list[CommandOffer | CommandCancel]:
        """Long-poll lease: cancels of the ``held`` leases the caller lost, and pending commands
        leased to it, as soon as there are any (a lost lease or a new command wakes it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with self.core.hub.subscribe(pending_key(deployment_id)) as sub:
            while True:
                messages = await self.writer.run(
                    self.ops.lease_pending(deployment_id, base_url, limit, held)
                )
                remaining = deadline - loop.time()
                if messages or remaining <= 0:
                    return messages
                await sub.wait(remaining)

    async def register_dispatcher(self, deployment_id: str, dispatcher: Dispatcher) -> int:
        """Serve ``deployment_id``'s commands by push through ``dispatcher`` from now on; the
        commands already waiting are dispatched to it at once (their number is returned).
        Call on the manager's event loop (``run_coroutine_threadsafe(…, center.loop)``)."""
        self.dispatchers.register(deployment_id, dispatcher)
        receiver = Receiver(base_url=dispatcher.base_url, dispatcher=dispatcher)
        return await self.writer.run(self.ops.attach(deployment_id, receiver))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the center runs on (set by ``start``)."""
        assert self._loop is not None, "the command center is not started"
        return self._loop

    def channel(self, deployment_id: str) -> _PushChannel:
        return _PushChannel(self, deployment_id)


class _PushChannel:
    """The agent-message operations, called directly by a push dispatcher."""

    def __init__(self, center: CommandCenter, deployment_id: str) -> None:
        self._center = center
        self._deployment_id = deployment_id

    async def ack(self, command_id: str, lease_id: str) -> CommandReceipt:
        return await self._send(CommandAck(command_id=command_id, lease_id=lease_id))

    async def renew(self, command_id: str, lease_id: str) -> CommandReceipt:
        return await self._send(CommandRenew(command_id=command_id, lease_id=lease_id))

    async def respond(self, response: CommandResponse) -> CommandReceipt:
        return await self._send(CommandResponseMessage(response=response))

    async def _send(self, message: AgentCommandMessage) -> CommandReceipt:
        return await self._center.agent_message(self._deployment_id, message)


async def _first(future: Awaitable[T], timeout: float, default: T) -> T:
    """``future``'s result, or ``default`` if it takes longer than ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        return default


def center_of(conn: HTTPConnection) -> CommandCenter:
    """The app's command center (set up by ``create_app``)."""
    return conn.app.state.commands  # type: ignore[no-any-return]
