"""A customer onboards their own AWS account: the role to create, and its registration.

``alien-deploy up --platform aws`` is run by the customer's admin with the customer's AWS
credentials and a deployment-group token. It asks the manager for a *plan* — the principal to
trust (the manager's own AWS identity), the external id to require, and the permissions the
release's stack needs (:func:`alien.stack.derive_permissions`) — creates that role in the
customer's account, then *registers* it: the manager assumes the role once to prove it can, and
records a push-model AWS deployment in the token's group.

The external id is what stops a confused deputy. Every customer's role trusts the same vendor
identity, so without it anyone holding a group token could register *another* customer's role
ARN and have the manager assume it for them. The id is an HMAC, under a secret kept in the
manager's data dir, of the group and the deployment name: unique per deployment, chosen by the
manager (never by the caller), and recomputed at registration, so no table holds pending plans.

Where the manager sends these calls comes from its operator (``ALIEN_AWS_ENDPOINT_URL``), never
from the request: a group token cannot point the manager's signed calls at a host of its choice.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict
from alien.manager.auth import Principal
from alien.manager.models import Group
from alien.manager.private_files import read_or_create
from alien.manager.services import aws_deployments
from alien.manager.services.deployments import newest_release_for
from alien.platforms.aws.credentials import sts_client
from alien.stack import Manifest, derive_permissions, manifest_from_json

SECRET_FILE = "aws-external-id-secret"
ROLE_POLICY_NAME = "alien-management"
VERIFY_SESSION_NAME = "alien-onboarding-check"
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")
NO_CREDENTIALS = "the manager has no AWS credentials (boto3's default chain found none)"
_STS_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)


class AwsIdentityUnavailable(AlienError):
    """The manager has no usable AWS identity of its own (no credentials, STS unreachable)."""

    code = "AWS_IDENTITY_UNAVAILABLE"
    status = 503


class RoleNotAssumable(AlienError):
    """The manager could not assume the role it was asked to register (yet: IAM propagates a
    new role's trust policy within seconds, so a caller may retry)."""

    code = "ROLE_NOT_ASSUMABLE"
    status = 422


@dataclass(frozen=True)
class OnboardingPlan:
    """What the customer's admin creates: a role trusting ``principal`` under ``external_id``,
    with ``permissions`` (derived from ``release_id``'s stack) as its inline policy."""

    group: str
    principal: str
    external_id: str
    release_id: str
    stack: str
    trust_policy: dict[str, Any]
    permissions: dict[str, Any]
    allowed_services: list[str]
    role_policy_name: str = ROLE_POLICY_NAME


@functools.cache
def load_secret(data_dir: Path) -> bytes:
    """The HMAC key for external ids, from ``data_dir`` (created 0600 on first use)."""
    stored = read_or_create(data_dir / SECRET_FILE, lambda: secrets.token_bytes(32).hex().encode())
    return bytes.fromhex(stored.decode().strip())


def external_id(secret: bytes, group_id: str, name: str) -> str:
    """The external id the role of ``name`` in ``group_id`` must require (stable, unguessable
    without the manager's secret)."""
    digest = hmac.new(secret, f"{group_id}/{name}".encode(), hashlib.sha256).hexdigest()
    return f"alien-{digest[:40]}"


def trusted_principal(caller_arn: str) -> str:
    """The ARN a trust policy names for the identity STS reports: an assumed role's session
    becomes its role (a role with a path needs ``ALIEN_AWS_PRINCIPAL_ARN``: STS does not say it)."""
    match = _ASSUMED_ROLE.match(caller_arn)
    if match is None:
        return caller_arn
    partition, account, role = match.groups()
    return f"arn:{partition}:iam::{account}:role/{role}"


def trust_policy(principal: str, external: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external}},
            }
        ],
    }


def services_of(policy: dict[str, Any]) -> list[str]:
    """The SigV4 signing names a debug session may reach: every service the policy grants
    something on, and STS (``get-caller-identity`` needs no grant)."""
    names = {"sts"}
    for statement in policy.get("Statement", []):
        actions = statement.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            names.add(action.split(":", 1)[0])
    return sorted(names)


@functools.cache
def manager_principal(region: str, endpoint_url: str | None) -> str:
    """The manager's own AWS identity as a trust policy names it (asked once per process)."""
    override = os.environ.get("ALIEN_AWS_PRINCIPAL_ARN")
    if override:
        return override
    try:
        arn = _sts(region, endpoint_url).get_caller_identity()["Arn"]
    except NoCredentialsError:
        raise AwsIdentityUnavailable(NO_CREDENTIALS) from None
    except (BotoCoreError, ClientError) as exc:
        raise AwsIdentityUnavailable(f"the manager could not ask STS who it is: {exc}") from None
    return trusted_principal(arn)


def plan(
    session: Session,
    caller: Principal,
    *,
    secret: bytes,
    name: str,
    region: str,
    account: str,
    endpoint_url: str | None,
) -> OnboardingPlan:
    """The role ``name``'s deployment needs, for the caller's (a group token's) group."""
    assert caller.group_id is not None
    release_id, manifest = _release(session, caller.group_id)
    permissions = derive_permissions(manifest, "aws", region=region, account=account)
    external = external_id(secret, caller.group_id, name)
    principal = manager_principal(region, endpoint_url)
    group = session.get(Group, caller.group_id)
    assert group is not None  # a group token is refused once its group is gone
    return OnboardingPlan(
        group=group.name,
        principal=principal,
        external_id=external,
        release_id=release_id,
        stack=manifest.name,
        trust_policy=trust_policy(principal, external),
        permissions=permissions,
        allowed_services=services_of(permissions),
    )


def check_assumable(registration: aws_deployments.AwsRegistration) -> None:
    """Assume the registration's role once, as the manager and with its external id, or say
    why that failed."""
    sts = _sts(registration.region, registration.endpoint_url)
    try:
        sts.assume_role(
            RoleArn=registration.role_arn,
            RoleSessionName=VERIFY_SESSION_NAME,
            ExternalId=registration.external_id,
            DurationSeconds=900,
        )
    except NoCredentialsError:
        raise AwsIdentityUnavailable(NO_CREDENTIALS) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise RoleNotAssumable(
            f"the manager cannot assume {registration.role_arn}: "
            f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": "),
            field="role_arn",
        ) from None
    except BotoCoreError as exc:
        raise AwsIdentityUnavailable(f"STS could not be reached: {exc}") from None


def _sts(region: str, endpoint_url: str | None) -> Any:
    return sts_client(None, region_name=region, endpoint_url=endpoint_url, config=_STS_CONFIG)


def registration(
    session: Session,
    caller: Principal,
    *,
    secret: bytes,
    name: str,
    region: str,
    role_arn: str,
    endpoint_url: str | None,
) -> aws_deployments.AwsRegistration:
    """What registering the role the customer created would record (nothing is written): the
    services come from the same release's stack the plan's permissions did."""
    assert caller.group_id is not None
    permissions = derive_permissions(
        _release(session, caller.group_id)[1], "aws", region=region, account=role_arn.split(":")[4]
    )
    return aws_deployments.AwsRegistration(
        name=name,
        region=region,
        role_arn=role_arn,
        allowed_services=services_of(permissions),
        external_id=external_id(secret, caller.group_id, name),
        endpoint_url=endpoint_url,
    )


def _release(session: Session, group_id: str) -> tuple[str, Manifest]:
    release = newest_release_for(session, group_id)
    if release is None:
        raise Conflict(
            "no release is aimed at this group yet: the role's permissions come from the "
            "release's stack, so publish one first",
            code="NO_RELEASE",
        )
    return release.id, manifest_from_json(release.manifest)
