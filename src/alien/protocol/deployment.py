"""The deployment lifecycle as an explicit, pure state machine.

Why a state machine: the manager, the agent and the CLI all reason about "what is running and what
should run". Keeping every legal move in one table means a stale or out-of-order report (a
``deploy_succeeded`` for a release nobody is deploying, a retry after deletion) is refused with
:class:`IllegalTransition` instead of quietly corrupting the record.

Transitions (anything not listed raises :class:`IllegalTransition`)::

    pending        provision_started          -> provisioning
    provisioning   provisioned                -> provisioned
    provisioning   provision_failed(error)    -> failed         (not provisioned)
    provisioned    deploy_started(r)          -> deploying
    deploying      deploy_succeeded(r)        -> running
    deploying      deploy_failed(r, error)    -> failed         (nothing good runs)
    running        deploy_started(r)          -> updating
    updating       deploy_succeeded(r)        -> running
    updating       deploy_failed(r, error)    -> update_failed  (the last good release serves)
    updating       rollback_started(reason?)  -> rolling_back   (undoing a half-applied update)
    rolling_back   rollback_succeeded(r)      -> update_failed
    rolling_back   rollback_failed(error)     -> failed
    update_failed  deploy_started(r)          -> updating
    failed         deploy_started(r)          -> deploying      (if provisioned)
    failed         provision_started          -> provisioning   (if not provisioned)
    failed         rollback_started(reason?)  -> rolling_back   (if a last good release exists)
    failed, update_failed   retry_requested   -> same state, failed_release cleared
                                                 (failed and not provisioned -> pending)
    any but deleting/deleted   desired_release_set(r)  -> same state, desired_release = r
    any but deleting/deleted   delete_requested        -> deleting
    deleting       delete_failed(error)       -> deleting       (error kept; teardown retried)
    deleting       deleted                    -> deleted        (absorbing: nothing leaves it)

A ``*_succeeded(r)`` / ``deploy_failed(r)`` must name the release in flight (``target_release``):
a report about another release is stale and refused.

Refinements over the first sketch, and why:

* ``provisioned`` — infrastructure is ready but no release was deployed yet; without it a
  provisioned-but-empty deployment would be indistinguishable from ``pending``.
* ``provision_failed``, ``delete_failed`` — provisioning and teardown fail too and must say why.
* ``desired_release_set`` — the manager changes what *should* run independently of what the agent
  is doing; ``target_release`` is what is *being* deployed right now. Keeping them apart lets an
  operator pick a new release in the middle of an update without the agent's report of the old
  one being refused.
* ``failed_release`` — the release whose deploy failed, so :func:`decide` does not retry the same
  broken release in a loop; ``retry_requested`` (an operator action) clears it.
* ``provisioned`` (the flag) — whether infrastructure exists, so a failed *provisioning* is retried
  by provisioning again and a failed *deploy* by deploying again.

Everything here is pure: no I/O, no clock. Models are pydantic so statuses and events go on the
wire as JSON (``event.model_dump(mode="json")``; parse with :func:`parse_event`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from alien.protocol.errors import IllegalTransition
from alien.protocol.wire import ErrorMessage, ReleaseId, WireModel, parse, parse_as


class DeploymentState(StrEnum):
    """Where a deployment is in its lifecycle. Values are stable wire strings."""

    PENDING = "pending"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    DEPLOYING = "deploying"
    RUNNING = "running"
    UPDATING = "updating"
    ROLLING_BACK = "rolling_back"
    UPDATE_FAILED = "update_failed"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


S = DeploymentState

IN_FLIGHT_STATES = frozenset({S.PROVISIONING, S.DEPLOYING, S.UPDATING, S.ROLLING_BACK, S.DELETING})
"""States in which some work (by the agent or a platform) is under way."""

TERMINAL_STATES = frozenset({S.DELETED})
"""States nothing leaves. ``deleting`` is not terminal (a teardown can fail) but is one-way."""

_TARGET_STATES = frozenset({S.DEPLOYING, S.UPDATING, S.ROLLING_BACK})
_PROVISIONED_STATES = frozenset(
    {S.PROVISIONED, S.DEPLOYING, S.RUNNING, S.UPDATING, S.ROLLING_BACK, S.UPDATE_FAILED}
)
_UNPROVISIONED_STATES = frozenset({S.PENDING, S.PROVISIONING, S.DELETED})
_ERROR_STATES = frozenset({S.FAILED, S.UPDATE_FAILED, S.ROLLING_BACK})
_NOTHING_RUNNING_STATES = frozenset(
    {S.PENDING, S.PROVISIONING, S.PROVISIONED, S.DEPLOYING, S.ROLLING_BACK, S.FAILED, S.DELETED}
)
_CLEAN_STATES = frozenset(
    {S.PENDING, S.PROVISIONING, S.PROVISIONED, S.DEPLOYING, S.RUNNING, S.UPDATING, S.DELETED}
)


class DeploymentStatus(WireModel):
    """What the control plane knows about one deployment.

    ``current_release`` is what serves now (``None`` when nothing good is known to run),
    ``desired_release`` what the vendor wants to run, ``target_release`` what is being deployed or
    rolled back to right now, ``last_good_release`` the last release that deployed successfully,
    ``failed_release`` the release whose deploy failed most recently (cleared by a new deploy or a
    retry), ``error`` why the deployment is not where it should be.

    The validator enforces the invariants of each state, so a status read from the wire (or built
    by a buggy transition) can never describe an impossible situation.
    """

    state: DeploymentState = S.PENDING
    provisioned: bool = False
    current_release: ReleaseId | None = None
    desired_release: ReleaseId | None = None
    target_release: ReleaseId | None = None
    last_good_release: ReleaseId | None = None
    failed_release: ReleaseId | None = None
    error: ErrorMessage | None = None

    @model_validator(mode="after")
    def _check_invariants(self) -> DeploymentStatus:
        problem = _invariant_violation(self)
        if problem:
            raise ValueError(f"inconsistent {self.state.value} status: {problem}")
        return self


def _invariant_violation(s: DeploymentStatus) -> str | None:
    """The first invariant ``s`` breaks, or ``None``. One rule per line, checked in order."""
    state = s.state
    rules: list[tuple[bool, str]] = [
        ((s.target_release is not None) == (state in _TARGET_STATES), "target_release"),
        (state not in _PROVISIONED_STATES or s.provisioned, "must be provisioned"),
        (state not in _UNPROVISIONED_STATES or not s.provisioned, "cannot be provisioned"),
        (state not in _ERROR_STATES or s.error is not None, "needs an error"),
        (state not in _CLEAN_STATES or s.error is None, "cannot carry an error"),
        (
            state not in {S.RUNNING, S.UPDATING, S.UPDATE_FAILED}
            or (s.current_release is not None and s.current_release == s.last_good_release),
            "current_release must be the last good release",
        ),
        (state not in _NOTHING_RUNNING_STATES or s.current_release is None, "nothing can run"),
        (
            state is not S.ROLLING_BACK or s.target_release == s.last_good_release,
            "a rollback targets the last good release",
        ),
        (
            state not in {S.PENDING, S.PROVISIONING, S.PROVISIONED} or s.last_good_release is None,
            "no release can have succeeded yet",
        ),
        (
            state not in {S.RUNNING, S.DEPLOYING, S.UPDATING, S.DELETING}
            or s.failed_release is None,
            "failed_release is cleared",
        ),
        (
            state is not S.DELETED
            or (
                s.desired_release is None
                and s.last_good_release is None
                and s.failed_release is None
            ),
            "a deleted deployment keeps no releases",
        ),
    ]
    return next((message for ok, message in rules if not ok), None)


# --- events -----------------------------------------------------------------------------------


class _Event(WireModel):
    @property
    def name(self) -> str:
        return self.type  # type: ignore[attr-defined,no-any-return]


class ProvisionStarted(_Event):
    type: Literal["provision_started"] = "provision_started"


class Provisioned(_Event):
    type: Literal["provisioned"] = "provisioned"


class ProvisionFailed(_Event):
    type: Literal["provision_failed"] = "provision_failed"
    error: ErrorMessage


class DeployStarted(_Event):
    type: Literal["deploy_started"] = "deploy_started"
    release: ReleaseId


class DeploySucceeded(_Event):
    type: Literal["deploy_succeeded"] = "deploy_succeeded"
    release: ReleaseId


class DeployFailed(_Event):
    type: Literal["deploy_failed"] = "deploy_failed"
    release: ReleaseId
    error: ErrorMessage


class RollbackStarted(_Event):
    """Restoring the last good release; ``reason`` says why (defaults to the failed update)."""

    type: Literal["rollback_started"] = "rollback_started"
    reason: ErrorMessage | None = None


class RollbackSucceeded(_Event):
    type: Literal["rollback_succeeded"] = "rollback_succeeded"
    release: ReleaseId


class RollbackFailed(_Event):
    type: Literal["rollback_failed"] = "rollback_failed"
    error: ErrorMessage


class DeleteRequested(_Event):
    type: Literal["delete_requested"] = "delete_requested"


class DeleteFailed(_Event):
    type: Literal["delete_failed"] = "delete_failed"
    error: ErrorMessage


class Deleted(_Event):
    type: Literal["deleted"] = "deleted"


class DesiredReleaseSet(_Event):
    """The vendor chose what should run (a new release, or an older one to go back to)."""

    type: Literal["desired_release_set"] = "desired_release_set"
    release: ReleaseId


class RetryRequested(_Event):
    """An operator asks to try again after a failure (clears the failed-release loop guard)."""

    type: Literal["retry_requested"] = "retry_requested"


DeploymentEvent = Annotated[
    ProvisionStarted
    | Provisioned
    | ProvisionFailed
    | DeployStarted
    | DeploySucceeded
    | DeployFailed
    | RollbackStarted
    | RollbackSucceeded
    | RollbackFailed
    | DeleteRequested
    | DeleteFailed
    | Deleted
    | DesiredReleaseSet
    | RetryRequested,
    Field(discriminator="type"),
]


_EVENT_ADAPTER: TypeAdapter[DeploymentEvent] = TypeAdapter(DeploymentEvent)


def parse_event(data: Any) -> DeploymentEvent:
    """Parse an event from untrusted wire data (a dict with ``type``, or JSON text)."""
    return parse_as(_EVENT_ADAPTER, "deployment event", data, tagged=True)


def parse_status(data: Any) -> DeploymentStatus:
    """Parse a status from untrusted wire data; invariants are checked."""
    return parse(DeploymentStatus, data)


# --- transitions ------------------------------------------------------------------------------

_Changes = dict[str, Any]


def _require(status: DeploymentStatus, event: _Event, *allowed: DeploymentState) -> None:
    if status.state not in allowed:
        raise IllegalTransition(
            f"{event.name} is not allowed while the deployment is {status.state.value}",
            field="state",
            details={"state": status.state.value, "event": event.name},
        )


def _require_target(status: DeploymentStatus, event: _Event, release: str) -> None:
    if release != status.target_release:
        raise IllegalTransition(
            f"{event.name} reports release {release!r} but {status.target_release!r} is the one "
            f"being {'rolled back to' if status.state is S.ROLLING_BACK else 'deployed'}",
            field="release",
            details={"state": status.state.value, "event": event.name},
        )


def _provision_started(s: DeploymentStatus, e: ProvisionStarted) -> _Changes:
    _require(s, e, S.PENDING, S.FAILED)
    if s.provisioned:
        raise IllegalTransition(
            "provision_started: the deployment is already provisioned", field="state"
        )
    return {"state": S.PROVISIONING, "error": None, "failed_release": None}


def _provisioned(s: DeploymentStatus, e: Provisioned) -> _Changes:
    _require(s, e, S.PROVISIONING)
    return {"state": S.PROVISIONED, "provisioned": True}


def _provision_failed(s: DeploymentStatus, e: ProvisionFailed) -> _Changes:
    _require(s, e, S.PROVISIONING)
    return {"state": S.FAILED, "error": e.error}


def _deploy_started(s: DeploymentStatus, e: DeployStarted) -> _Changes:
    _require(s, e, S.PROVISIONED, S.RUNNING, S.UPDATE_FAILED, S.FAILED)
    if not s.provisioned:
        raise IllegalTransition(
            "deploy_started: provisioning failed; provision again first", field="state"
        )
    state = S.DEPLOYING if s.current_release is None else S.UPDATING
    return {"state": state, "target_release": e.release, "error": None, "failed_release": None}


def _deploy_succeeded(s: DeploymentStatus, e: DeploySucceeded) -> _Changes:
    _require(s, e, S.DEPLOYING, S.UPDATING)
    _require_target(s, e, e.release)
    return {
        "state": S.RUNNING,
        "current_release": e.release,
        "last_good_release": e.release,
        "target_release": None,
    }


def _deploy_failed(s: DeploymentStatus, e: DeployFailed) -> _Changes:
    _require(s, e, S.DEPLOYING, S.UPDATING)
    _require_target(s, e, e.release)
    # A failed first deploy leaves nothing good running; a failed update is reported only once
    # the platform has the last good release serving again (else it reports rollback_started).
    state = S.FAILED if s.state is S.DEPLOYING else S.UPDATE_FAILED
    return {"state": state, "target_release": None, "failed_release": e.release, "error": e.error}


def _rollback_started(s: DeploymentStatus, e: RollbackStarted) -> _Changes:
    _require(s, e, S.UPDATING, S.FAILED)
    if s.last_good_release is None or not s.provisioned:
        raise IllegalTransition(
            "rollback_started: there is no good release to roll back to", field="state"
        )
    failed = s.target_release if s.state is S.UPDATING else s.failed_release
    default = f"update to {failed} failed" if failed else "rolling back"
    return {
        "state": S.ROLLING_BACK,
        "current_release": None,
        "target_release": s.last_good_release,
        "failed_release": failed,
        "error": e.reason or s.error or default,
    }


def _rollback_succeeded(s: DeploymentStatus, e: RollbackSucceeded) -> _Changes:
    _require(s, e, S.ROLLING_BACK)
    _require_target(s, e, e.release)
    return {"state": S.UPDATE_FAILED, "current_release": e.release, "target_release": None}


def _rollback_failed(s: DeploymentStatus, e: RollbackFailed) -> _Changes:
    _require(s, e, S.ROLLING_BACK)
    return {"state": S.FAILED, "target_release": None, "error": e.error}


_ALIVE = tuple(state for state in DeploymentState if state not in {S.DELETING, S.DELETED})


def _delete_requested(s: DeploymentStatus, e: DeleteRequested) -> _Changes:
    _require(s, e, *_ALIVE)
    return {"state": S.DELETING, "target_release": None, "failed_release": None, "error": None}


def _delete_failed(s: DeploymentStatus, e: DeleteFailed) -> _Changes:
    _require(s, e, S.DELETING)
    return {"error": e.error}


def _deleted(s: DeploymentStatus, e: Deleted) -> _Changes:
    _require(s, e, S.DELETING)
    return DeploymentStatus(state=S.DELETED).model_dump()


def _desired_release_set(s: DeploymentStatus, e: DesiredReleaseSet) -> _Changes:
    _require(s, e, *_ALIVE)
    return {"desired_release": e.release}


def _retry_requested(s: DeploymentStatus, e: RetryRequested) -> _Changes:
    _require(s, e, S.FAILED, S.UPDATE_FAILED)
    if s.state is S.FAILED and not s.provisioned:
        return {"state": S.PENDING, "error": None, "failed_release": None}
    return {"failed_release": None}


_HANDLERS: dict[type[_Event], Callable[[DeploymentStatus, Any], _Changes]] = {
    ProvisionStarted: _provision_started,
    Provisioned: _provisioned,
    ProvisionFailed: _provision_failed,
    DeployStarted: _deploy_started,
    DeploySucceeded: _deploy_succeeded,
    DeployFailed: _deploy_failed,
    RollbackStarted: _rollback_started,
    RollbackSucceeded: _rollback_succeeded,
    RollbackFailed: _rollback_failed,
    DeleteRequested: _delete_requested,
    DeleteFailed: _delete_failed,
    Deleted: _deleted,
    DesiredReleaseSet: _desired_release_set,
    RetryRequested: _retry_requested,
}


def apply(status: DeploymentStatus, event: DeploymentEvent) -> DeploymentStatus:
    """The status after ``event``; raises :class:`IllegalTransition` if the state forbids it.

    Pure: ``status`` is not modified. The result is validated against the state invariants.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"not a deployment event: {event!r}")
    if status.state in TERMINAL_STATES:
        raise IllegalTransition(
            f"{event.name} is not allowed: the deployment is deleted", field="state"
        )
    changes = handler(status, event)
    return DeploymentStatus(**{**dict(status), **changes})


def needs_update(status: DeploymentStatus) -> bool:
    """Whether the desired release differs from what runs, on a deployment that can still move."""
    return (
        status.state not in {S.DELETING, S.DELETED}
        and status.desired_release is not None
        and status.desired_release != status.current_release
    )


# --- convergence ------------------------------------------------------------------------------


class ActionKind(StrEnum):
    IDLE = "idle"
    PROVISION = "provision"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    DELETE = "delete"


class ConvergeAction(WireModel):
    """What the agent should do next to bring the deployment to its desired state.

    ``resume`` means the work is already recorded as started (an in-flight state): the agent
    performs it without reporting the start event again — the case after an agent restart, or
    after a teardown attempt failed. ``release`` is set for ``deploy`` and ``rollback``.
    """

    kind: ActionKind
    release: ReleaseId | None = None
    resume: bool = False
    reason: str


def _idle(reason: str) -> ConvergeAction:
    return ConvergeAction(kind=ActionKind.IDLE, reason=reason)


def decide(status: DeploymentStatus) -> ConvergeAction:
    """The convergence decision, made whenever the agent has no lifecycle work running.

    It never retries a release that just failed (``failed_release``) nor a failed provisioning:
    those wait for a new desired release or an explicit ``retry_requested``, so a broken release
    cannot make the agent loop.
    """
    state = status.state
    if state is S.DELETED:
        return _idle("the deployment is deleted")
    if state is S.DELETING:
        return ConvergeAction(kind=ActionKind.DELETE, resume=True, reason="deletion requested")
    if state is S.PENDING:
        return ConvergeAction(kind=ActionKind.PROVISION, reason="nothing is provisioned yet")
    if state is S.PROVISIONING:
        return ConvergeAction(kind=ActionKind.PROVISION, resume=True, reason="resume provisioning")
    if state in {S.DEPLOYING, S.UPDATING}:
        return ConvergeAction(
            kind=ActionKind.DEPLOY,
            release=status.target_release,
            resume=True,
            reason=f"resume deploying {status.target_release}",
        )
    if state is S.ROLLING_BACK:
        return ConvergeAction(
            kind=ActionKind.ROLLBACK,
            release=status.target_release,
            resume=True,
            reason=f"resume rolling back to {status.target_release}",
        )
    if not status.provisioned:
        return _idle("provisioning failed; waiting for a retry")
    if not needs_update(status):
        if status.desired_release is None:
            return _idle("no release is desired yet")
        return _idle(f"release {status.current_release} is running as desired")
    if status.desired_release == status.failed_release:
        return _idle(
            f"release {status.desired_release} failed; waiting for another release or a retry"
        )
    return ConvergeAction(
        kind=ActionKind.DEPLOY,
        release=status.desired_release,
        reason=f"release {status.desired_release} is desired, "
        f"{status.current_release or 'nothing'} runs",
    )
