"""The vendor's management role in a customer's AWS account, created by the customer's admin.

``alien-deploy up --platform aws`` runs this with the *customer's* credentials (boto3's default
chain): it creates the role the manager's plan describes, or brings a role it created before up
to date (trust policy and inline permissions; running ``up`` again after a new release widens or
narrows them). A role of that name that alien did not create is never touched: it is tagged
:data:`MANAGED_TAG` on creation, and an untagged one is refused, so a mistyped ``--role-name``
cannot rewrite the trust policy of an unrelated role.

``alien-deploy down --platform aws`` deletes such a role (:func:`delete_role`), and only such a
role: its tag says which deployment it serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from alien.errors import Conflict, NotFound

MANAGED_TAG = "alien:managed-role"
MAX_ROLE_NAME = 64


@dataclass(frozen=True)
class RoleSpec:
    """What the role must be: ``trust_policy`` (who may assume it) and ``permissions`` (inline,
    named ``policy_name``), for the deployment ``deployment`` (``group/name``)."""

    name: str
    deployment: str
    trust_policy: dict[str, Any]
    policy_name: str
    permissions: dict[str, Any]


def default_role_name(deployment_name: str) -> str:
    return f"alien-{deployment_name}"[:MAX_ROLE_NAME].rstrip("-")


def ensure_role(iam: Any, spec: RoleSpec) -> tuple[str, bool]:
    """Create the role, or update the one alien created under that name; its ARN and whether
    it was created now. IAM's own errors (no permission, a policy over IAM's size limit) are
    raised as botocore's ``ClientError``."""
    trust = json.dumps(spec.trust_policy, separators=(",", ":"))
    try:
        role = iam.create_role(
            RoleName=spec.name,
            AssumeRolePolicyDocument=trust,
            Description=f"The vendor's management role for {spec.deployment} (alien)",
            MaxSessionDuration=3600,
            Tags=[{"Key": MANAGED_TAG, "Value": spec.deployment}],
        )["Role"]
        created = True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        role = iam.get_role(RoleName=spec.name)["Role"]
        if _managed_for(role) != spec.deployment:
            raise Conflict(
                f"the role {spec.name} exists and was not created by alien for "
                f"{spec.deployment}: pass another --role-name",
                field="role_name",
                code="ROLE_EXISTS",
            ) from None
        iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=trust)
        created = False
    iam.put_role_policy(
        RoleName=spec.name,
        PolicyName=spec.policy_name,
        PolicyDocument=json.dumps(spec.permissions, separators=(",", ":")),
    )
    return role["Arn"], created


def managed_deployment(iam: Any, name: str) -> str:
    """The deployment (``group/name``) the role ``name`` was created for by alien; ``NotFound``
    without such a role, ``Conflict`` (``ROLE_NOT_MANAGED``) for a role alien did not create."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
        raise NotFound(
            f"this account has no role {name}: nothing to delete (pass --role-name if "
            "up was given one)",
            field="role_name",
        ) from None
    deployment = _managed_for(role)
    if not deployment:
        raise Conflict(
            f"the role {name} was not created by alien-deploy: left alone",
            field="role_name",
            code="ROLE_NOT_MANAGED",
        )
    return deployment


def _managed_for(role: dict[str, Any]) -> str | None:
    """The deployment (``group/name``) an IAM role's :data:`MANAGED_TAG` names, if it has one."""
    return next((t["Value"] for t in role.get("Tags", []) if t["Key"] == MANAGED_TAG), None)


def delete_role(iam: Any, name: str) -> None:
    """Delete the role with its inline policies, after detaching any managed policy an admin
    attached to it (IAM refuses to delete a role that still has either). The policies
    themselves are not deleted."""
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy in page["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        for attached in page["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)
