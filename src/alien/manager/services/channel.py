"""What the manager does with each agent message, shared by the WebSocket and HTTP transports.

Each function runs inside one write transaction and returns the messages to send back; the
transports only move bytes. Release ids an agent mentions must be releases assigned to its
deployment, so a deployment token cannot make its record point at someone else's release.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from alien.errors import NotFound, ValidationError
from alien.manager.models import Deployment
from alien.manager.services.deployment_tokens import revoke_tokens
from alien.manager.services.deployments import (
    apply_event,
    group_names,
    is_assigned,
    record_heartbeat,
    status_of,
)
from alien.manager.services.releases import desired_release_message, get_release
from alien.protocol.agent_channel import (
    AgentMessage,
    Heartbeat,
    Hello,
    ManagerMessage,
    StatusReport,
    Welcome,
)
from alien.protocol.deployment import DeploymentState
from alien.protocol.errors import IllegalTransition


def load(session: Session, deployment_id: str, *, for_update: bool = False) -> Deployment:
    dep = session.get(Deployment, deployment_id, with_for_update=for_update)
    if dep is None:
        raise NotFound("this deployment no longer exists", field="deployment")
    return dep


def handle(
    session: Session, deployment_id: str, message: AgentMessage, *, heartbeat_interval: float
) -> list[ManagerMessage]:
    dep = load(session, deployment_id, for_update=True)
    record_heartbeat(session, dep)
    if isinstance(message, Hello):
        dep.agent_version = message.agent_version
        group = group_names(session, {dep.group_id})[dep.group_id]
        return [
            Welcome(
                deployment_id=dep.id,
                deployment_name=dep.name,
                group=group,
                heartbeat_interval=heartbeat_interval,
                status=status_of(dep),
            )
        ]
    if isinstance(message, Heartbeat):
        return []
    assert isinstance(message, StatusReport)
    if message.event is not None:
        release = getattr(message.event, "release", None)
        if release is not None and not is_assigned(session, release, dep.id):
            raise ValidationError(
                f"release {release!r} was never assigned to this deployment",
                field="event.release",
                code="UNKNOWN_RELEASE",
            )
        try:
            status = apply_event(dep, message.event)
        except IllegalTransition as exc:
            exc.details = {**exc.details, "status": status_of(dep).model_dump(mode="json")}
            raise
        if status.state is DeploymentState.DELETED:
            revoke_tokens(session, dep.id)
    if message.detail is not None:
        dep.status_detail = dict(message.detail)
    return []


def pending(session: Session, deployment_id: str, known: str | None) -> list[ManagerMessage]:
    """Work waiting for the agent: the desired release, unless it is the one the agent knows."""
    dep = load(session, deployment_id)
    if dep.desired_release_id is None or dep.desired_release_id == known:
        return []
    return [desired_release_message(get_release(session, dep.desired_release_id))]
