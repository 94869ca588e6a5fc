"""The operations the writer runs on commands (each ``op(session) -> (value, effects)``).

Every state change is one of the protocol's pure functions applied to the stored record:
``new_command`` + ``dispatch`` (create), ``lease`` (ack, long-poll lease), ``renew``,
``respond``, ``cancel``, ``tick`` (sweep, and first thing in every other operation). What this
module adds is only *where* things go: which receiver gets a pending command, which waiters and
agents must hear about a change — as effects run after the commit.

Receivers: a push dispatcher registered for the deployment wins; else the newest agent link
taking commands; else nobody — the command stays ``pending`` for the agent's next lease request
(long-poll), which is woken through the event hub.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict, Forbidden, NotFound, PayloadTooLarge, ValidationError
from alien.manager import audit_events
from alien.manager.auth import Action, Principal, authorize, resolve
from alien.manager.blobs import BlobStore, StagedBlob
from alien.manager.commands.dispatch import DispatchChannel, Dispatcher, DispatcherRegistry
from alien.manager.commands.links import AgentLink, LinkRegistry
from alien.manager.commands.offers import build_offer
from alien.manager.commands.records import (
    COLUMNS,
    TABLE,
    CommandSnapshot,
    CommandStore,
    record_of,
    with_record,
)
from alien.manager.commands.schemas import CommandCreate
from alien.manager.commands.settings import CommandSettings
from alien.manager.commands.signing import UrlSigner
from alien.manager.commands.targets import TargetCache, choose_target
from alien.manager.commands.writer import Effect, Op, keyed
from alien.manager.db import utcnow
from alien.manager.events import EventHub
from alien.manager.ids import new_id
from alien.manager.models import CommandPayload, Release
from alien.manager.row_cache import CacheKind, cached
from alien.manager.services import approvals, policy_commands
from alien.manager.services.audit import SYSTEM, AuditLog, actor_of
from alien.manager.services.deployments import is_alive, resolve_deployment
from alien.manager.services.policy import access_suspended
from alien.manager.services.policy_effective import Party
from alien.protocol.agent_channel import (
    CommandAck,
    CommandCancel,
    CommandOffer,
    CommandReceipt,
    CommandRenew,
    CommandResponseMessage,
    HeldLease,
)
from alien.protocol.audit import Actor, ActorKind, Outcome, format_time
from alien.protocol.command_messages import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FINISHED,
    COMMAND_NOT_FOUND,
    DUPLICATE_RESPONSE,
    NO_COMMAND_TARGET,
    STALE_LEASE,
    TARGET_AMBIGUOUS,
    CommandResponse,
    fits_inline,
)
from alien.protocol.commands import (
    CommandRecord,
    CommandRefused,
    CommandState,
    IllegalTransition,
    acknowledge,
    cancel,
    dispatch,
    lease,
    new_command,
    next_wakeup,
    renew,
    respond,
    tick,
)
from alien.protocol.deployment import DeploymentState

IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
UNKNOWN_PAYLOAD = "UNKNOWN_PAYLOAD"
RESULT_ALREADY_UPLOADED = "RESULT_ALREADY_UPLOADED"
SWEEP_BATCH = 500
ATTACH_BATCH = 1000
_HELD = frozenset({CommandState.DISPATCHED, CommandState.LEASED})
_LIVE = (CommandState.PENDING.value, CommandState.DISPATCHED.value, CommandState.LEASED.value)
_ENDED_CODES = {
    CommandState.SUCCEEDED: COMMAND_FINISHED,
    CommandState.FAILED: COMMAND_FINISHED,
    CommandState.EXPIRED: COMMAND_EXPIRED,
    CommandState.CANCELLED: COMMAND_CANCELLED,
}

AgentCommandMessage = CommandAck | CommandRenew | CommandResponseMessage


NOT_THIS_DEPLOYMENTS = "no such command for this deployment"
"""What an agent is told of a command that is not its deployment's (or does not exist)."""


def pending_key(deployment_id: str) -> str:
    """Event-hub key woken when a command of the deployment waits for a lease request."""
    return f"commands:{deployment_id}"


@dataclass(frozen=True)
class Created:
    snapshot: CommandSnapshot
    replayed: bool


@dataclass(frozen=True)
class Receiver:
    """Where a delivery goes: an agent link or a push dispatcher."""

    base_url: str
    link: AgentLink | None = None
    dispatcher: Dispatcher | None = None


class CommandOps:
    def __init__(
        self,
        *,
        settings: CommandSettings,
        signer: UrlSigner,
        links: LinkRegistry,
        dispatchers: DispatcherRegistry,
        targets: TargetCache,
        hub: EventHub,
        publish: Callable[[CommandSnapshot], None],
        hint: Callable[[datetime], None],
        channel_for: Callable[[str], DispatchChannel],
        audit: AuditLog | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        """``audit``: the sealed trail that records creates, cancels and results, and where the
        customer's policy is enforced (``None``: neither, for tests of the lifecycle alone).
        ``blobs``: the payload store, checked when a payload is recorded (see ``retention``)."""
        self.audit = audit
        self.blobs = blobs
        self.settings = settings
        self.signer = signer
        self.links = links
        self.dispatchers = dispatchers
        self.targets = targets
        self.hub = hub
        self._publish = publish
        self._hint = hint
        self._channel_for = channel_for

    # --- create ------------------------------------------------------------------------------

    def create(self, token: str, body: CommandCreate, command_id: str) -> Op[Created]:
        """Authenticate, resolve, target, store and dispatch — in the writer's transaction, so a
        create costs no separate read (the token check included)."""

        def op(session: Session) -> tuple[Created, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            caller = caller_of(session, token, Action.COMMANDS_INVOKE, self.audit)
            dep = _deployment(session, body.deployment, caller.groups)
            authorize(
                caller,
                Action.COMMANDS_INVOKE,
                deployments=[dep.id],
                missing=_unknown(body.deployment),
            )
            digest = request_digest(body)
            if body.idempotency_key is not None:
                replay = _replay(store, dep.id, body.idempotency_key, digest)
                if replay is not None:
                    return Created(replay, replayed=True), ()
            if not dep.alive:
                gone = (
                    "was torn down"
                    if dep.state == DeploymentState.DELETED
                    else "is being torn down"
                )
                raise Conflict(
                    f"deployment {body.deployment} {gone}",
                    field="deployment",
                    code=NO_COMMAND_TARGET,
                )
            target = choose_target(
                deployment=body.deployment,
                functions=self._functions(session, dep),
                requested=body.target,
                command=body.command,
                detail=dep.status_detail,
            )
            parties = self._admit(session, caller, dep, body.command)
            params, params_sha256, params_size = self._params(session, dep.id, body)
            record = new_command(
                command_id=command_id,
                deployment_id=dep.id,
                command=body.command,
                now=now,
                deadline=self._deadline(body, now),
                max_attempts=body.max_attempts or self.settings.default_max_attempts,
            )
            snap = with_record(
                CommandSnapshot(
                    id=command_id,
                    deployment_id=dep.id,
                    command=body.command,
                    target=target,
                    state=record.state,
                    attempt=record.attempt,
                    max_attempts=record.max_attempts,
                    created_at=now,
                    deadline=record.deadline,
                    lease_id=None,
                    lease_expires_at=None,
                    ended_at=None,
                    wakeup_at=None,
                    params=params,
                    params_sha256=params_sha256,
                    params_size=params_size,
                    response=None,
                    error=None,
                    idempotency_key=body.idempotency_key,
                    request_digest=digest,
                    traceparent=body.traceparent,
                    created_by=caller.label,
                    updated_at=now,
                ),
                record,
            )
            effects: list[Effect] = []
            if not parties:
                record = self._dispatch(snap, record, now, effects)
            snap = with_record(snap, record)
            store.insert(snap)
            self._wake_at(record, effects)
            self._audit_create(session, caller, dep, snap, parties)
            return Created(snap, replayed=False), effects

        return op

    def _functions(self, session: Session, dep: DeploymentFacts) -> tuple[str, ...] | None:
        release_id = dep.current_release_id
        if release_id is None:
            return None
        return self.targets.functions(
            release_id,
            lambda: session.scalar(select(Release.manifest).where(Release.id == release_id)),
        )

    def _params(
        self, session: Session, dep_id: str, body: CommandCreate
    ) -> tuple[dict[str, object] | None, str | None, int | None]:
        if body.params_ref is None:
            params = body.params if body.params is not None else {}
            try:
                fits = fits_inline(params)
            except ValueError:
                raise ValidationError(
                    "params hold NaN or an infinity, which JSON cannot carry", field="params"
                ) from None
            if not fits:
                raise PayloadTooLarge(
                    "params over 256 KiB travel by reference: upload them with "
                    "POST /v1/commands/payloads and pass params_ref",
                    field="params",
                )
            return dict(params), None, None
        ref = body.params_ref
        size = session.scalar(
            select(CommandPayload.size)
            .where(
                CommandPayload.kind == "params",
                CommandPayload.deployment_id == dep_id,
                CommandPayload.sha256 == ref.sha256,
            )
            .limit(1)
        )
        if size is None:
            raise ValidationError(
                "no params with that sha256 were uploaded for this deployment",
                field="params_ref.sha256",
                code=UNKNOWN_PAYLOAD,
            )
        if size != ref.size:
            raise ValidationError(
                f"the uploaded params are {size} bytes, not {ref.size}", field="params_ref.size"
            )
        return None, ref.sha256, ref.size

    def _deadline(self, body: CommandCreate, now: datetime) -> datetime:
        """The command's deadline. A timeout is compared with the maximum as a number, before
        it becomes a ``timedelta``: a huge one (``1e12``, or an infinity JSON lets through)
        would overflow ``timedelta`` or the date — a 500 instead of the 422 any too-long run
        gets."""
        longest = self.settings.max_timeout
        if body.deadline is not None:
            deadline, field = body.deadline, "deadline"
            too_long = deadline - now > timedelta(seconds=longest)
        else:
            timeout, field = body.timeout or self.settings.default_timeout, "timeout"
            too_long = not timeout <= longest  # NaN too, should a validator ever let it through
            deadline = now if too_long else now + timedelta(seconds=timeout)
        if too_long:
            raise ValidationError(f"a command may run for at most {longest:g} seconds", field=field)
        if deadline <= now:
            raise ValidationError("the deadline must be in the future", field=field)
        return deadline

    # --- messages from whoever runs the handler ---------------------------------------------

    def agent_message(self, deployment_id: str, message: AgentCommandMessage) -> Op[CommandReceipt]:
        """``command_ack`` / ``command_renew`` / ``command_response`` of an agent (or a push
        dispatcher, or a handler posting to its signed response URL) of ``deployment_id``.

        Never raises for what the message says: every outcome is a receipt (refusals carry the
        code), and what time alone changed (``tick``) is stored either way."""
        command_id, lease_id, of = _identify(message)

        def op(session: Session) -> tuple[CommandReceipt, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            snap = store.get(command_id)
            if snap is None or snap.deployment_id != deployment_id:
                return _receipt(
                    command_id,
                    lease_id,
                    of,
                    ok=False,
                    code=COMMAND_NOT_FOUND,
                    message=NOT_THIS_DEPLOYMENTS,
                ), ()
            effects: list[Effect] = []
            before = record_of(snap)
            current = tick(before, now)
            try:
                after = self._apply_message(session, current, message, now)
            except (CommandRefused, IllegalTransition, ValidationError) as exc:
                self._settle(store, snap, before, current, now, effects)
                return self._refusal(exc, message, current), effects
            stored = self._settle(store, snap, before, after, now, effects)
            if isinstance(message, CommandResponseMessage):
                self._audit_result(session, stored)
            receipt = _receipt(
                command_id,
                lease_id,
                of,
                ok=True,
                state=after.state,
                lease_expires_at=after.lease_expires_at,
            )
            return receipt, effects

        return keyed(op, command_id)

    def _apply_message(
        self, session: Session, record: CommandRecord, message: AgentCommandMessage, now: datetime
    ) -> CommandRecord:
        ttl = self.settings.lease_seconds
        if isinstance(message, CommandAck):
            return acknowledge(record, lease_id=message.lease_id, now=now, ttl=ttl)
        if isinstance(message, CommandRenew):
            return renew(record, lease_id=message.lease_id, now=now, ttl=ttl)
        answered = respond(record, message.response, now=now)
        _check_result_ref(session, message.response)
        return answered

    @staticmethod
    def _refusal(
        exc: Exception, message: AgentCommandMessage, current: CommandRecord
    ) -> CommandReceipt:
        command_id, lease_id, of = _identify(message)
        if isinstance(exc, IllegalTransition):
            if isinstance(message, CommandAck) and current.lease_id == lease_id:
                # A repeated ack of the lease the agent already holds: harmless.
                return _receipt(
                    command_id,
                    lease_id,
                    of,
                    ok=True,
                    state=current.state,
                    lease_expires_at=current.lease_expires_at,
                )
            code, text = STALE_LEASE, "this lease is not the command's current lease"
        else:
            assert isinstance(exc, CommandRefused | ValidationError)
            code, text = exc.code, exc.message
        # A duplicate response is a success for the agent: its answer is stored (the first).
        ok = code == DUPLICATE_RESPONSE
        return _receipt(
            command_id, lease_id, of, ok=ok, code=code, message=text, state=current.state
        )

    # --- cancel ------------------------------------------------------------------------------

    def cancel(self, token: str, command_id: str, reason: str | None) -> Op[CommandSnapshot]:
        def op(session: Session) -> tuple[CommandSnapshot, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            caller = caller_of(session, token, Action.COMMANDS_CANCEL, self.audit)
            snap = store.get(command_id)
            if snap is None:
                raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
            authorize(
                caller,
                Action.COMMANDS_CANCEL,
                deployments=[snap.deployment_id],
                missing=NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND),
            )
            before = record_of(snap)
            after = cancel(before, now=now, reason=reason)
            effects: list[Effect] = []
            stored = self._settle(store, snap, before, after, now, effects)
            self._audit(session, actor_of(caller), "command.cancel", stored, {"reason": reason})
            approvals.withdraw(session, snap.id)
            return stored, effects

        return keyed(op, command_id)

    # --- time: the sweeper -------------------------------------------------------------------

    def sweep(self, limit: int = SWEEP_BATCH) -> Op[datetime | None]:
        """Apply ``tick`` to every command whose wake-up time passed; answer the next one."""

        def op(session: Session) -> tuple[datetime | None, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            due = store.select(
                select(TABLE)
                .where(COLUMNS.wakeup_at <= now)
                .order_by(COLUMNS.wakeup_at)
                .limit(limit)
            )
            effects: list[Effect] = []
            for snap in due:
                before = record_of(snap)
                stored = self._settle(store, snap, before, tick(before, now), now, effects)
                if stored.terminal and not before.terminal:
                    self._audit_result(session, stored, SYSTEM)
                    if before.state is CommandState.PENDING:
                        approvals.withdraw(session, snap.id)  # it may have waited for one
            store.flush()
            upcoming = session.scalar(select(func.min(COLUMNS.wakeup_at)))
            return upcoming, effects

        return op

    # --- agents taking commands --------------------------------------------------------------

    def attach(self, deployment_id: str, receiver: Receiver) -> Op[int]:
        """A receiver became available: offer it every pending command of the deployment. An
        agent link is also sent again every command it holds (it may have missed them while
        disconnected; it ignores a lease it already runs)."""
        states = _LIVE if receiver.link is not None else (CommandState.PENDING.value,)

        def op(session: Session) -> tuple[int, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            if self._suspended(session, deployment_id):
                return 0, ()  # nothing is handed out while the customer suspended access
            live = store.select(
                select(TABLE)
                .where(
                    COLUMNS.deployment_id == deployment_id,
                    COLUMNS.state.in_(states),
                    policy_commands.not_held(COLUMNS.id),
                )
                .order_by(COLUMNS.id)
                .limit(ATTACH_BATCH)
            )
            effects: list[Effect] = []
            for snap in live:
                before = record_of(snap)
                after = tick(before, now)
                if after.state is CommandState.PENDING:
                    after = self._offer(receiver, snap, after, now, effects)
                elif after.state in _HELD and after == before:
                    effects.append(self._deliver(receiver, snap, after))
                self._settle(store, snap, before, after, now, effects)
            return len(live), effects

        return op

    def lease_pending(
        self, deployment_id: str, base_url: str, limit: int, held: Sequence[HeldLease] = ()
    ) -> Op[list[CommandOffer | CommandCancel]]:
        """Lease up to ``limit`` pending commands to an agent polling over HTTP (pull model),
        after a cancel for each of the ``held`` leases that is no longer its command's
        current one (worked out from the stored commands: nothing to lose in a restart)."""

        def op(session: Session) -> tuple[list[CommandOffer | CommandCancel], Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            messages: list[CommandOffer | CommandCancel] = [
                cancel
                for claim in held
                if (cancel := _lost(store.get(claim.command_id), deployment_id, claim, now))
            ]
            if limit < 1 or self._suspended(session, deployment_id):
                return messages, ()  # none asked for, or the customer suspended access
            waiting = store.select(
                select(TABLE)
                .where(
                    COLUMNS.deployment_id == deployment_id,
                    COLUMNS.state == CommandState.PENDING.value,
                    policy_commands.not_held(COLUMNS.id),
                )
                .order_by(COLUMNS.id)
                .limit(limit)
            )
            effects: list[Effect] = []
            for snap in waiting:
                before = record_of(snap)
                after = tick(before, now)
                if after.state is CommandState.PENDING:
                    ttl = self.settings.lease_seconds
                    after = lease(after, lease_id=new_id("lse"), now=now, ttl=ttl)
                    offer = build_offer(snap, after, base_url=base_url, signer=self.signer)
                    messages.append(offer)
                self._settle(store, snap, before, after, now, effects)
            return messages, effects

        return keyed(op, *(claim.command_id for claim in held))  # loaded in one query

    # --- payloads ----------------------------------------------------------------------------

    def record_params_payload(
        self, token: str, deployment_ref: str, sha256: str, size: int
    ) -> Op[str]:
        """Record an upload just stored. A refusal removes the file unless a row names it:
        the upload stored it before this check, and retention only collects files of rows."""

        def op(session: Session) -> tuple[str, Sequence[Effect]]:
            try:
                caller = caller_of(session, token, Action.COMMANDS_INVOKE, self.audit)
                dep = _deployment(session, deployment_ref, caller.groups)
                authorize(
                    caller,
                    Action.COMMANDS_INVOKE,
                    deployments=[dep.id],
                    missing=_unknown(deployment_ref),
                )
                self._check_stored(sha256)
            except AlienError:
                self._discard_unnamed(session, sha256)
                raise
            _add_payload(session, "params", sha256, size, dep.id, None, caller.label)
            return dep.id, ()

        return op

    def _discard_unnamed(self, session: Session, sha256: str) -> None:
        """Delete the stored file of ``sha256`` if no payload row names it — neither a stored
        one nor one an earlier operation of this batch added (not flushed yet). An upload of
        the same content racing this is told to retry by its own record's :meth:`_check_stored`,
        as when it races retention."""
        if self.blobs is None:
            return
        pending = any(
            isinstance(row, CommandPayload) and row.sha256 == sha256 for row in session.new
        )
        named = session.scalar(
            select(CommandPayload.id).where(CommandPayload.sha256 == sha256).limit(1)
        )
        if not pending and named is None:
            self.blobs.path_for(f"sha256:{sha256}").unlink(missing_ok=True)

    def check_result_upload(self, command_id: str, deployment_id: str, lease_id: str) -> Op[None]:
        """Refuse (before any byte is stored) a result upload for a command that ended, or
        under a lease that is not its current one (see :func:`_upload_lease`)."""

        def op(session: Session) -> tuple[None, Sequence[Effect]]:
            _upload_lease(_own_command(session, command_id, deployment_id), lease_id)
            return None, ()

        return op

    def record_result_payload(
        self, command_id: str, deployment_id: str, lease_id: str, staged: StagedBlob
    ) -> Op[None]:
        """Store a staged result upload and record it under its lease — if that is still the
        command's current lease: it may have run out while the bytes streamed in, and then the
        upload leaves nothing behind. One result per lease: the same document again is stored
        already; another is refused (``RESULT_ALREADY_UPLOADED``), or one upload URL could fill
        the store with documents that no response names, kept until retention. Stored here, in
        the writer, so that no payload collection comes between the file and its row."""
        assert self.blobs is not None, "results are stored in the payload store"
        store = self.blobs
        sha256, size = staged.info.digest.removeprefix("sha256:"), staged.info.size

        def op(session: Session) -> tuple[None, Sequence[Effect]]:
            lease = _upload_lease(_own_command(session, command_id, deployment_id), lease_id)
            uploaded = _lease_results(session, command_id, lease)
            if sha256 in uploaded:
                return None, ()
            if uploaded:
                raise Conflict(
                    f"a different result was already uploaded under this lease of command "
                    f"{command_id}; send that one's result_ref",
                    field="body",
                    code=RESULT_ALREADY_UPLOADED,
                    details={"sha256": sorted(uploaded)[0]},
                )
            store.place(staged)
            _add_payload(session, "result", sha256, size, deployment_id, command_id, None, lease)
            return None, ()

        return op

    def discard_unnamed(self, sha256: str) -> Op[None]:
        """Remove the stored file of ``sha256`` unless a payload row names it: what a result
        upload whose record failed to commit placed (see :meth:`_discard_unnamed`)."""

        def op(session: Session) -> tuple[None, Sequence[Effect]]:
            self._discard_unnamed(session, sha256)
            return None, ()

        return op

    def _check_stored(self, sha256: str) -> None:
        """The file just stored is still there: payload retention may have removed a file of
        the same content in between (its last row expired), which this upload recreated."""
        if self.blobs is not None and self.blobs.stat(f"sha256:{sha256}") is None:
            raise Conflict(
                "the upload raced the removal of an expired payload of the same content; retry",
                field="body",
            )

    # --- access governance ------------------------------------------------------------------

    def _suspended(self, session: Session, deployment_id: str) -> bool:
        return self.audit is not None and access_suspended(session, deployment_id)

    def _admit(
        self, session: Session, caller: Principal, dep: DeploymentFacts, command: str
    ) -> tuple[Party, ...]:
        if self.audit is None:
            return ()
        return policy_commands.admit(session, self.audit, caller, dep, command)

    def _audit(
        self,
        session: Session,
        actor: Actor,
        action: str,
        snap: CommandSnapshot,
        details: dict[str, object],
        outcome: Outcome | None = None,
    ) -> None:
        if self.audit is not None:
            details = {"command": snap.command, "state": snap.state.value, **details}
            policy_commands.record(
                session, self.audit, actor, action, snap.deployment_id, snap.id, details, outcome
            )

    def _audit_create(
        self,
        session: Session,
        caller: Principal,
        dep: DeploymentFacts,
        snap: CommandSnapshot,
        parties: tuple[Party, ...],
    ) -> None:
        if self.audit is None:
            return
        details: dict[str, object] = {"target": snap.target, "deadline": format_time(snap.deadline)}
        if parties:
            details["approval"] = [p.value for p in parties]
        self._audit(session, actor_of(caller), "command.create", snap, details)
        if parties:
            policy_commands.hold(
                session,
                self.audit,
                caller,
                command_id=snap.id,
                deployment=dep,
                command=snap.command,
                parties=parties,
            )

    def _audit_result(
        self, session: Session, snap: CommandSnapshot, actor: Actor | None = None
    ) -> None:
        if not snap.terminal:
            return
        error = snap.error or {}
        outcome = Outcome.SUCCEEDED if snap.state is CommandState.SUCCEEDED else Outcome.FAILED
        who = actor or Actor(kind=ActorKind.DEPLOYMENT, id=snap.deployment_id)
        details = {"attempt": snap.attempt, "code": error.get("code")}
        self._audit(session, who, "command.result", snap, details, outcome)

    def suspend(self, deployment_id: str, actor: Actor, reason: str) -> Op[list[str]]:
        """Cancel every command of the deployment that is being worked on (the customer
        suspended vendor access): whoever holds it is sent ``command_cancel``. Pending ones
        stay, held, until access returns or their deadline passes."""

        def op(session: Session) -> tuple[list[str], Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            running = store.select(
                select(TABLE)
                .where(
                    COLUMNS.deployment_id == deployment_id,
                    COLUMNS.state.in_([s.value for s in _HELD]),
                )
                .order_by(COLUMNS.id)
            )
            effects: list[Effect] = []
            cancelled = []
            for snap in running:
                before = record_of(snap)
                current = tick(before, now)
                if current.terminal:
                    self._settle(store, snap, before, current, now, effects)
                    continue
                after = cancel(current, now=now, reason=reason)
                stored = self._settle(store, snap, before, after, now, effects)
                self._audit(session, actor, "command.cancel", stored, {"reason": reason})
                cancelled.append(snap.id)
            return cancelled, effects

        return op

    def decided(self, command_id: str, actor: Actor, *, approved: bool) -> Op[CommandSnapshot]:
        """An approval of the command was completed: dispatch it, or cancel it (denied)."""

        def op(session: Session) -> tuple[CommandSnapshot, Sequence[Effect]]:
            now = utcnow()
            store = CommandStore.of(session)
            snap = store.get(command_id)
            if snap is None:
                raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
            before = record_of(snap)
            current = tick(before, now)
            effects: list[Effect] = []
            if current.terminal:
                return self._settle(store, snap, before, current, now, effects), effects
            if not approved:
                after = cancel(current, now=now, reason="the approval was denied")
                stored = self._settle(store, snap, before, after, now, effects)
                self._audit(session, actor, "command.cancel", stored, {"reason": "denied"})
                return stored, effects
            if current.state is CommandState.PENDING and not self._suspended(
                session, snap.deployment_id
            ):
                after = self._dispatch(snap, current, now, effects)
                return self._settle(store, snap, before, after, now, effects), effects
            return self._settle(store, snap, before, current, now, effects), effects

        return keyed(op, command_id)

    # --- where deliveries go -----------------------------------------------------------------

    def receiver(self, deployment_id: str) -> Receiver | None:
        dispatcher = self.dispatchers.get(deployment_id)
        if dispatcher is not None:
            return Receiver(base_url=dispatcher.base_url, dispatcher=dispatcher)
        link = self.links.current(deployment_id)
        if link is not None:
            return Receiver(base_url=link.base_url, link=link)
        return None

    def _dispatch(
        self, snap: CommandSnapshot, record: CommandRecord, now: datetime, effects: list[Effect]
    ) -> CommandRecord:
        """Hand a pending command to its receiver, or tell lease requests it is waiting."""
        receiver = self.receiver(snap.deployment_id)
        if receiver is None:
            effects.append(partial(self.hub.publish, pending_key(snap.deployment_id)))
            return record
        return self._offer(receiver, snap, record, now, effects)

    def _offer(
        self,
        receiver: Receiver,
        snap: CommandSnapshot,
        record: CommandRecord,
        now: datetime,
        effects: list[Effect],
    ) -> CommandRecord:
        record = dispatch(record, lease_id=new_id("lse"), now=now, ttl=self.settings.lease_seconds)
        effects.append(self._deliver(receiver, snap, record))
        return record

    def _deliver(self, receiver: Receiver, snap: CommandSnapshot, record: CommandRecord) -> Effect:
        offer = build_offer(snap, record, base_url=receiver.base_url, signer=self.signer)
        if receiver.link is not None:
            return partial(receiver.link.push, offer)
        assert receiver.dispatcher is not None
        return partial(receiver.dispatcher.deliver, offer, self._channel_for(snap.deployment_id))

    def _settle(
        self,
        store: CommandStore,
        snap: CommandSnapshot,
        before: CommandRecord,
        after: CommandRecord,
        now: datetime,
        effects: list[Effect],
    ) -> CommandSnapshot:
        """Store ``after`` and say so: re-dispatch a command whose lease was lost, stop whoever
        held a lease that is gone, wake waiters when it ended, and the sweeper when due."""
        if after.state is CommandState.PENDING and before.state is not CommandState.PENDING:
            after = self._dispatch(snap, after, now, effects)
        lost = (
            before.state in _HELD
            and after.response is None
            and (after.state not in _HELD or after.lease_id != before.lease_id)
        )
        if lost:
            effects.append(self._stop(snap.deployment_id, before, after))
        if after is before:
            return snap
        stored = with_record(snap, after)
        store.update(stored)
        if after.terminal and not before.terminal:
            effects.append(partial(self._publish, stored))
        if next_wakeup(after) != next_wakeup(before):
            self._wake_at(after, effects)
        return stored

    def _stop(self, deployment_id: str, before: CommandRecord, after: CommandRecord) -> Effect:
        assert before.lease_id is not None  # it was held
        cancel_message = _cancel_for(after, before.lease_id)
        links = self.links.all(deployment_id)
        dispatcher = self.dispatchers.get(deployment_id)

        def effect() -> None:
            for link in links:
                link.push(cancel_message)
            if dispatcher is not None:
                dispatcher.cancel(before.id, cancel_message.code, cancel_message.message)
            if not links and dispatcher is None:  # a long-polling agent, or none right now:
                self.hub.publish(pending_key(deployment_id))  # its lease request lists it

        return effect

    def _wake_at(self, record: CommandRecord, effects: list[Effect]) -> None:
        wake = next_wakeup(record)
        if wake is not None:
            effects.append(partial(self._hint, wake))


# --- helpers ---------------------------------------------------------------------------------


def request_digest(body: CommandCreate) -> str:
    """What makes two creates "the same request" for idempotency: command, target, params,
    attempts — not the deadline, which a retry recomputes from its timeout."""
    material = {
        "command": body.command,
        "target": body.target,
        "params": body.params if body.params_ref is None else None,
        "params_ref": body.params_ref.sha256 if body.params_ref is not None else None,
        "max_attempts": body.max_attempts,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def caller_of(
    session: Session,
    token: str,
    action: Action,
    audit: AuditLog | None = None,
    *,
    write: Callable[[], AbstractContextManager[Session]] | None = None,
) -> Principal:
    """Who presents ``token``, if they could ever take ``action`` (401/403 otherwise).

    With ``audit``, a known caller refused ``action`` (403) is recorded (``access.denied``, as
    the other routes' refusals are) in ``session`` — the writer commits an operation's writes
    although it raised, as it does a policy refusal's record — or, for a read ``session``,
    which cannot hold it, in a ``write`` transaction of its own. A token that is not valid
    (401) is not recorded: anyone can send one.

    Looked up once per transaction (``session.info``): under load one writer batch carries many
    requests of the same caller."""
    memo: dict[str, Principal | None] = session.info.setdefault("principals", {})
    if token not in memo:
        memo[token] = resolve(session, token)
    principal = memo[token]
    try:
        return authorize(principal, action)
    except Forbidden as refused:
        if audit is not None and principal is not None:
            with write() if write is not None else nullcontext(session) as target:
                audit_events.denied(target, audit, principal, action.value, refused)
        raise


@dataclass(frozen=True)
class DeploymentFacts:
    """What creating a command reads of its deployment, kept across transactions."""

    id: str
    name: str
    alive: bool
    state: str
    current_release_id: str | None
    status_detail: Mapping[str, Any]


DEPLOYMENTS = CacheKind("command-deployments", tables=("deployments", "groups"))
"""A deployment reference's facts, remembered while no deployment or group changed."""


def _deployment(session: Session, ref: str, groups: frozenset[str] | None) -> DeploymentFacts:
    """The deployment ``ref`` names among ``groups`` (a group-scoped caller's; ``None``: all),
    remembered per reference and scope (:data:`DEPLOYMENTS`): a scoped key must resolve a bare
    name among its own groups only, or another group's deployment of that name would make it
    ambiguous (and so reveal that it exists)."""
    return cached(
        session, DEPLOYMENTS, (ref, groups), lambda: _load_deployment(session, ref, groups)
    )


def _load_deployment(session: Session, ref: str, groups: frozenset[str] | None) -> DeploymentFacts:
    try:
        dep = resolve_deployment(session, ref, field="deployment", groups=groups)
    except Conflict as exc:
        if exc.code != "AMBIGUOUS_NAME":
            raise
        raise Conflict(exc.message, field="deployment", code=TARGET_AMBIGUOUS) from None
    return DeploymentFacts(
        id=dep.id,
        name=dep.name,
        alive=is_alive(dep),
        state=dep.state,
        current_release_id=dep.current_release_id,
        status_detail=dep.status_detail,
    )


def _unknown(ref: str) -> NotFound:
    """What a group-scoped key is told about a deployment outside its groups: exactly what
    ``resolve_deployment`` says when there is none by that reference."""
    return NotFound(f"no deployment {ref!r}", field="deployment")


def _replay(store: CommandStore, dep_id: str, key: str, digest: str) -> CommandSnapshot | None:
    found = store.select(
        select(TABLE).where(COLUMNS.deployment_id == dep_id, COLUMNS.idempotency_key == key)
    )
    if found and found[0].request_digest != digest:
        raise Conflict(
            "this idempotency_key was used for a different request (command, target or params)",
            field="idempotency_key",
            code=IDEMPOTENCY_KEY_REUSED,
            details={"command_id": found[0].id},
        )
    return found[0] if found else None


def _own_command(session: Session, command_id: str, deployment_id: str) -> CommandSnapshot:
    snap = CommandStore.of(session).get(command_id)
    if snap is None or snap.deployment_id != deployment_id:
        raise NotFound(f"no command {command_id}", field="id", code=COMMAND_NOT_FOUND)
    return snap


def _add_payload(
    session: Session,
    kind: str,
    sha256: str,
    size: int,
    deployment_id: str,
    command_id: str | None,
    created_by: str | None,
    lease_id: str | None = None,
) -> None:
    session.add(
        CommandPayload(
            kind=kind,
            sha256=sha256,
            size=size,
            deployment_id=deployment_id,
            command_id=command_id,
            lease_id=lease_id,
            created_at=utcnow(),
            created_by=created_by,
        )
    )


def _lease_results(session: Session, command_id: str, lease_id: str) -> set[str]:
    """The sha256 of each result uploaded for the command under ``lease_id``: recorded, or
    added by an earlier operation of this batch (not flushed yet). One, but for uploads made
    before one per lease was enforced."""
    added = {
        row.sha256
        for row in session.new
        if isinstance(row, CommandPayload)
        and (row.kind, row.command_id, row.lease_id) == ("result", command_id, lease_id)
    }
    stored = session.scalars(
        select(CommandPayload.sha256).where(
            CommandPayload.kind == "result",
            CommandPayload.command_id == command_id,
            CommandPayload.lease_id == lease_id,
        )
    )
    return added | set(stored)


def _upload_lease(snap: CommandSnapshot, lease_id: str) -> str:
    """The lease a result upload signed for ``lease_id`` is stored under: the command's current
    lease, which ``lease_id`` must be. Empty, it is a URL signed before upload URLs named their
    lease (one handed out by the previous version, until its command's deadline): it stores for
    whichever lease is current, as such URLs always did. Refused once the command ended (the
    code of how) or while no such lease holds it (``STALE_LEASE``: the lease ran out, and the
    command is waiting for, or was handed to, another attempt)."""
    record = tick(record_of(snap), utcnow())
    if record.terminal:
        raise CommandRefused(
            f"command {record.id} is {record.state.value}; its result can no longer be stored",
            field="state",
            code=_ENDED_CODES[record.state],
        )
    if record.state not in _HELD or lease_id not in ("", record.lease_id):
        raise CommandRefused(
            f"this upload URL's lease is not the current lease of command {record.id}: "
            "another attempt holds it, or none yet",
            field="lease",
            code=STALE_LEASE,
            details={"state": record.state.value},
        )
    assert record.lease_id is not None  # held
    return record.lease_id


def _check_result_ref(session: Session, response: CommandResponse) -> None:
    """A response's ``result_ref`` must name a result uploaded for its command under its own
    lease (and be of that size): not another command's, nor another attempt's."""
    ref = response.result_ref
    if ref is None:
        return
    size = session.scalar(
        select(CommandPayload.size)
        .where(
            CommandPayload.kind == "result",
            CommandPayload.command_id == response.command_id,
            CommandPayload.lease_id == response.lease_id,
            CommandPayload.sha256 == ref.sha256,
        )
        .limit(1)
    )
    if size is None or size != ref.size:
        raise ValidationError(
            "result_ref names no result uploaded under this lease (use the delivery's "
            "result_upload_url)",
            field="response.result_ref",
            code=UNKNOWN_PAYLOAD,
        )


def _cancel_for(record: CommandRecord, lease_id: str) -> CommandCancel:
    """Stop working under ``lease_id``, which ``record`` (ticked) no longer holds."""
    error = record.outcome_error if record.terminal else None
    return CommandCancel(
        command_id=record.id,
        lease_id=lease_id,
        code=error.code if error is not None else STALE_LEASE,
        message=error.message if error is not None else "the lease expired before a response",
    )


def _lost(
    snap: CommandSnapshot | None, deployment_id: str, claim: HeldLease, now: datetime
) -> CommandCancel | None:
    """The cancel an agent of ``deployment_id`` that holds ``claim`` should hear, if any. A
    lease is kept while held and after its response (:class:`CommandRecord`'s invariant), so
    it is lost exactly when it is no longer the command's lease — as of ``now``: a lease run
    out but not yet swept is lost too, as its renewal would be refused."""
    if snap is None or snap.deployment_id != deployment_id:
        return CommandCancel(
            command_id=claim.command_id,
            lease_id=claim.lease_id,
            code=COMMAND_NOT_FOUND,
            message=NOT_THIS_DEPLOYMENTS,
        )
    record = tick(record_of(snap), now)
    return None if record.lease_id == claim.lease_id else _cancel_for(record, claim.lease_id)


def _identify(message: AgentCommandMessage) -> tuple[str, str, str]:
    if isinstance(message, CommandResponseMessage):
        return message.response.command_id, message.response.lease_id, "response"
    of = "ack" if isinstance(message, CommandAck) else "renew"
    return message.command_id, message.lease_id, of


def _receipt(
    command_id: str,
    lease_id: str,
    of: str,
    *,
    ok: bool,
    state: CommandState | None = None,
    lease_expires_at: datetime | None = None,
    code: str | None = None,
    message: str | None = None,
) -> CommandReceipt:
    return CommandReceipt(
        command_id=command_id,
        lease_id=lease_id,
        of=of,  # type: ignore[arg-type]
        ok=ok,
        state=state,
        lease_expires_at=lease_expires_at,
        code=code,
        message=message[:4096] if message else None,
    )
