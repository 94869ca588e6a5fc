"""Push-model AWS deployments: registered by an admin, reached with the customer's role.

A push-model deployment has no agent. The customer created a management role in their account
(trusting the vendor's identity, optionally with an external id); the admin records the role, the
region, which AWS services debugging may reach and, for tests and private setups, an endpoint
override. The manager then assumes that role with its own identity (boto3's default credential
chain) whenever a debug session needs to reach the account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alien.errors import Conflict
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.ids import new_id
from alien.manager.models import AwsDeploymentConfig, Deployment, Group
from alien.manager.services import audit
from alien.manager.services.deployments import _store_status
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.protocol.audit import Outcome
from alien.protocol.deployment import DeploymentState, DeploymentStatus

PLATFORM = "aws"


@dataclass(frozen=True)
class AwsRegistration:
    """What an admin gives to register an AWS deployment (validated by :func:`endpoint_policy`)."""

    name: str
    region: str
    role_arn: str
    allowed_services: Sequence[str]
    external_id: str | None = None
    endpoint_url: str | None = None


def endpoint_policy(config: AwsDeploymentConfig) -> AwsEndpointPolicy:
    """The allowlist the re-signer enforces for this deployment."""
    return AwsEndpointPolicy.create(
        region=config.region,
        allowed_services=config.allowed_services,
        endpoint_override=config.endpoint_url,
    )


def _check(registration: AwsRegistration) -> list[str]:
    """Validate region, services and endpoint the way the re-signer will read them."""
    services = sorted(set(registration.allowed_services))
    AwsEndpointPolicy.create(
        region=registration.region,
        allowed_services=services,
        endpoint_override=registration.endpoint_url,
    )
    return services


def register(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    group: Group,
    registration: AwsRegistration,
    *,
    metadata: dict[str, Any] | None = None,
) -> tuple[Deployment, AwsDeploymentConfig]:
    """Create the deployment (platform ``aws``) in ``group`` with its AWS configuration.

    The name follows the onboarding rule: refused while a deployment of that name exists in the
    group, unless that one was torn down (``deleted``).
    """
    services = _check(registration)
    existing = session.scalar(
        select(Deployment).where(
            Deployment.group_id == group.id, Deployment.name == registration.name
        )
    )
    if existing is not None:
        if existing.state != DeploymentState.DELETED.value:
            raise Conflict(
                f"a deployment named {registration.name!r} already exists in this group",
                field="name",
                code="NAME_TAKEN",
            )
        session.delete(existing)
        session.flush()
    now = utcnow()
    dep = Deployment(
        id=new_id("dep"),
        group_id=group.id,
        name=registration.name,
        platform=PLATFORM,
        status_detail={},
        deployment_metadata=dict(metadata or {}),
        onboarded_with=caller.id,
        created_at=now,
    )
    _store_status(dep, DeploymentStatus())
    session.add(dep)
    session.flush()
    config = AwsDeploymentConfig(
        deployment_id=dep.id,
        region=registration.region,
        role_arn=registration.role_arn,
        external_id=registration.external_id,
        endpoint_url=registration.endpoint_url,
        allowed_services=services,
        created_at=now,
        updated_at=now,
    )
    session.add(config)
    session.flush()
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.actor_of(caller),
            action="deployment.register_aws",
            outcome=Outcome.SUCCEEDED,
            deployment=dep.id,
            target=f"{group.name}/{dep.name}",
            details={
                "region": config.region,
                "role_arn": config.role_arn,
                "allowed_services": services,
                "endpoint_url": config.endpoint_url,
                "external_id_set": config.external_id is not None,
            },
        ),
    )
    session.flush()
    return dep, config


def any_registered(session: Session) -> bool:
    """Whether any push-model AWS deployment is registered."""
    return session.scalar(select(AwsDeploymentConfig.deployment_id).limit(1)) is not None


def get_config(session: Session, deployment_id: str) -> AwsDeploymentConfig | None:
    """The AWS configuration of a push-model deployment, or ``None`` for any other deployment."""
    return session.get(AwsDeploymentConfig, deployment_id)
