"""``/v1/onboard`` and ``/v1/deployments``: onboarding, listing, describing, waiting, deleting.

A deployment is addressed by id (``dep_…``), by ``<group>/<name>``, or by bare name when only
one deployment has it (else 409 ``AMBIGUOUS_NAME``). ``{ref:path}`` lets the ``/`` through. A
reference is resolved only among the deployments the caller may see (a scoped key's groups', a
deployment token's own): anything else is 404, as if it did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import ValidationError
from alien.manager import audit_events
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.api.views import deployment_out, deployments_out
from alien.manager.auth import Action, Principal, authorize
from alien.manager.commands.center import center_of
from alien.manager.commands.deletion import forget_commands
from alien.manager.commands.writer import Effect
from alien.manager.core import ManagerCore
from alien.manager.events import deployment_key
from alien.manager.schemas import DeploymentOut, Onboarded, OnboardRequest, Page, WaitOut
from alien.manager.services import deployments
from alien.manager.services.debug_sessions import revoke_live, session_key
from alien.manager.services.groups import get_group
from alien.protocol.deployment import DeploymentState

router = APIRouter(tags=["deployments"])
Onboarder = Annotated[Principal, Depends(require(Action.ONBOARD))]
Lister = Annotated[Principal, Depends(require(Action.DEPLOYMENTS_LIST))]
Reader = Annotated[Principal, Depends(require(Action.DEPLOYMENT_READ))]
Deleter = Annotated[Principal, Depends(require(Action.DEPLOYMENT_DELETE))]


@router.post("/v1/onboard", status_code=201, response_model=Onboarded)
def onboard(body: OnboardRequest, core: Core, log: Audit, caller: Onboarder) -> Onboarded:
    """Create a deployment in the group of the presenting group token (``ax_dg_…``).

    Returns the deployment and its token (``ax_dep_…``, shown only here), which the agent uses
    for everything after this. The group token can do this and nothing else.
    """
    with core.db.write() as session:
        dep, secret = deployments.onboard(
            session, caller, name=body.name, platform=body.platform, metadata=body.metadata
        )
        audit_events.onboarded(session, log, caller, dep)
        out = deployment_out(session, dep, core.agents)
    return Onboarded(deployment=out, token=secret)


@router.get("/v1/deployments", response_model=Page[DeploymentOut])
def list_deployments(
    core: Core,
    caller: Lister,
    group: Annotated[str | None, Query(description="group id or name")] = None,
    state: DeploymentState | None = None,
) -> Page[DeploymentOut]:
    with core.db.read() as session:
        scope = caller.groups
        group_row = get_group(session, group, groups=scope) if group is not None else None
        rows = deployments.list_deployments(session, group=group_row, state=state, groups=scope)
        return Page(items=deployments_out(session, rows, core.agents))


def _check_wait(
    core: ManagerCore,
    caller: Principal,
    ref: str,
    release: str | None,
    states: set[str],
    *,
    first: bool = False,
) -> tuple[str, WaitOut]:
    """The deployment's id and what a wait that ended now would answer. ``first``: also refuse
    a ``release`` that can never arrive (checked once: an assignment never appears later)."""
    with core.db.read() as session:
        dep = deployments.visible_deployment(session, caller, ref)
        authorize(caller, Action.DEPLOYMENT_READ, deployments=[dep.id])
        if first and release is not None:
            deployments.check_awaitable(session, caller, dep, release)
        out = deployment_out(session, dep, core.agents)
    matched = (not states or dep.state in states) and (
        release is None or dep.current_release_id == release
    )
    if matched:
        return dep.id, WaitOut(outcome="matched", deployment=out)
    if release is not None and dep.failed_release_id == release:
        return dep.id, WaitOut(outcome="failed", deployment=out)
    return dep.id, WaitOut(outcome="timeout", deployment=out)


@router.get("/v1/deployments/{ref:path}/wait", response_model=WaitOut)
async def wait_deployment(
    ref: str,
    core: Core,
    caller: Reader,
    state: Annotated[
        list[DeploymentState] | None,
        Query(description="return once the deployment is in any of these states"),
    ] = None,
    release: Annotated[
        str | None, Query(description="return once this release is the current one")
    ] = None,
    timeout: Annotated[float, Query(ge=0, description="seconds to wait at most")] = 30.0,
) -> WaitOut:
    """Long-poll until the deployment reaches a state and/or runs a release, or ``timeout``.

    Answers at once when the condition already holds. ``outcome`` is ``failed`` as soon as the
    awaited ``release`` failed on this deployment, ``timeout`` when the wait ran out (200 both:
    the body says what happened).

    A ``release`` that can never become the current one is refused at once instead: 404 (field
    ``release``) when it does not exist or the caller may not see it (a key scoped to other
    groups, another deployment's token: the same answer as for no release), 409 when it exists
    but is not assigned to this deployment. The rule never refuses a wait that could succeed:
    a release is assigned only when it is created (to the deployments it targets then) or when a
    deployment onboards (the newest release for its group), so once the deployment exists a
    release not assigned to it never will be — a release aimed at its group but created before
    it onboarded, and not the newest then, included.
    """
    if not state and release is None:
        raise ValidationError("give at least one 'state' or a 'release' to wait for", field="state")
    if timeout > core.settings.max_wait:
        raise ValidationError(
            f"timeout may be at most {core.settings.max_wait:g} seconds", field="timeout"
        )
    states = {s.value for s in state or ()}
    deadline = time.monotonic() + timeout
    dep_id, result = await run_in_threadpool(
        _check_wait, core, caller, ref, release, states, first=True
    )
    if result.outcome != "timeout" or timeout == 0:
        return result
    # Subscribe, then look again: a change landing between the first look and the subscription
    # is seen by the second look, one landing later wakes the subscription.
    with core.hub.subscribe(deployment_key(dep_id)) as sub:
        while True:
            _, result = await run_in_threadpool(_check_wait, core, caller, dep_id, release, states)
            remaining = deadline - time.monotonic()
            if result.outcome != "timeout" or remaining <= 0:
                return result
            await sub.wait(remaining)


@router.get("/v1/deployments/{ref:path}", response_model=DeploymentOut)
def get_deployment(ref: str, core: Core, caller: Reader) -> DeploymentOut:
    with core.db.read() as session:
        dep = deployments.visible_deployment(session, caller, ref)
        authorize(caller, Action.DEPLOYMENT_READ, deployments=[dep.id])
        return deployment_out(session, dep, core.agents)


@router.delete("/v1/deployments/{ref:path}", status_code=204)
async def delete_deployment(
    ref: str, request: Request, core: Core, log: Audit, caller: Deleter
) -> Response:
    """Forget a deployment: its token stops working, a connected agent is disconnected, its
    live debug sessions are revoked (their tunnels drop within a second: nothing should keep
    reaching a deployment the manager no longer knows), and its commands and their payloads are
    deleted — through the command writer, so their signed URLs stop working with them.

    Tearing down what runs in the customer's environment is the agent's business (it reports
    ``delete_requested`` … ``deleted``); this removes the manager's record. A deployment's own
    token may delete it too: the customer cutting the vendor off (``alien-deploy down``).
    Audited (``deployment.delete``).
    """
    center = center_of(request)

    def delete(session: Session) -> tuple[tuple[str, list[str]], Sequence[Effect]]:
        dep = deployments.visible_deployment(session, caller, ref)
        reason = f"the deployment {dep.name} was deleted"
        revoked = revoke_live(session, log, caller, reason=reason, deployment_id=dep.id)
        audit_events.deployment_deleted(session, log, caller, dep, revoked)
        forget_commands(session, center.payloads, dep.id)
        deployments.delete_deployment(session, dep)
        return (dep.id, revoked), ()

    dep_id, revoked = await center.writer.run(delete)
    core.deployments_changed([dep_id])
    core.hub.publish(*(session_key(s) for s in revoked))
    return Response(status_code=204)
