"""``alien-deploy up|down --platform aws``: onboard this AWS account for the vendor's push model,
and cut the vendor off again.

Run by the customer's admin, with the customer's AWS credentials (boto3's default chain: the
environment, ``~/.aws``, SSO, an instance role) and the group token the vendor handed over. It
asks the manager for the plan, shows what it will create and asks before creating it (``--yes``
skips the question), creates or updates the management role, then registers it. Nothing runs
here afterwards: the manager reaches the account by assuming the role, and the customer can cut
that access at any moment by deleting the role: ``alien-deploy down --platform aws`` does it, and
first tells the manager (with the deployment's token), which forgets the deployment and ends its
live debug sessions at once. The role goes even when the manager cannot be told: the cut never
depends on the vendor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from alien.agent.onboard import check_group_token
from alien.client import calls
from alien.client.config import ClientConfig, check_manager_url
from alien.client.models import AwsOnboarded, AwsOnboardingPlan
from alien.client.sync import ManagerClient
from alien.errors import AlienError, NotFound, PlatformError, ValidationError
from alien.platforms.aws.management_role import (
    RoleSpec,
    default_role_name,
    delete_role,
    ensure_role,
    managed_deployment,
)

PROPAGATION_SECONDS = 60.0
"""How long to keep asking the manager to register a role it cannot assume yet: IAM makes a new
role's trust policy effective within seconds, rarely more."""


@dataclass(frozen=True)
class AwsUpRequest:
    token: str | None
    manager: str | None
    name: str
    region: str | None
    role_name: str | None
    yes: bool


def onboard_aws(request: AwsUpRequest, say: Any) -> AwsOnboarded | None:
    """Create the management role this deployment needs and register it with the manager."""
    check_group_token(request.token, "onboarding an AWS account needs the group token")
    if not request.manager:
        raise ValidationError("pass --manager URL (or set ALIEN_MANAGER_URL)", field="manager")
    config = ClientConfig(base_url=check_manager_url(request.manager), token=request.token)
    import boto3  # only on this path: the agent's own start does not need it

    session = boto3.Session(region_name=request.region)
    region = session.region_name
    if not region:
        raise ValidationError("pass --region (or set AWS_REGION)", field="region")
    account = _aws(lambda: session.client("sts").get_caller_identity()["Account"])
    with ManagerClient(config) as client:
        plan = client.call(calls.aws_onboarding_plan(request.name, region, account))
        spec = RoleSpec(
            name=request.role_name or default_role_name(request.name),
            deployment=f"{plan.group}/{request.name}",
            trust_policy=plan.trust_policy,
            policy_name=plan.role_policy_name,
            permissions=plan.permissions,
        )
        _show(plan, spec, account, region, say)
        if not request.yes and not typer.confirm("Create or update this role?"):
            raise ValidationError("nothing was created", field="confirmation")
        role_arn, created = _aws(lambda: ensure_role(session.client("iam"), spec))
        say(f"{'created' if created else 'updated'} {role_arn}")
        onboarded = _register(client, request.name, region, role_arn)
    if onboarded is None:
        say(f"{spec.deployment} was already onboarded (the manager keeps the role it registered)")
    else:
        say(f"onboarded {spec.deployment} ({onboarded.deployment.id})")
        say(
            f"its token, shown this once — keep it as a secret: {onboarded.token}\n"
            f"  (ALIEN_DEPLOYMENT_TOKEN=… alien-deploy policy|pending|approve|audit "
            f"--manager {config.base_url} set this deployment's policy and answer approvals)"
        )
    down = "alien-deploy down --platform aws" + (
        f" --role-name {spec.name}" if request.role_name else f" --name {request.name}"
    )
    say(
        f"the vendor reaches this account only by assuming {role_arn}; to cut that access, "
        f"delete the role: ALIEN_DEPLOYMENT_TOKEN=… {down} --manager {config.base_url}"
    )
    return onboarded


@dataclass(frozen=True)
class AwsDownRequest:
    name: str
    role_name: str | None
    manager: str | None
    token: str | None
    """The deployment's own token (``ALIEN_DEPLOYMENT_TOKEN``), to tell the manager."""
    yes: bool


@dataclass(frozen=True)
class AwsDown:
    deployment: str
    role: str
    told_manager: bool
    warning: str | None


def offboard_aws(request: AwsDownRequest) -> AwsDown:
    """Delete the management role alien created for this deployment, telling the manager first."""
    import boto3  # only on this path

    session = boto3.Session()
    # IAM is global (signed for us-east-1): no --region to ask for, whatever the profile says.
    iam = session.client("iam", region_name=session.region_name or "us-east-1")
    role = request.role_name or default_role_name(request.name)
    deployment = _aws(lambda: managed_deployment(iam, role))
    if not request.yes and not typer.confirm(
        f"Delete the role {role}: the vendor's only way into this account, for {deployment}?"
    ):
        raise ValidationError("nothing was deleted", field="confirmation")
    warning = _forget(request, deployment)
    _aws(lambda: delete_role(iam, role))
    return AwsDown(deployment, role, told_manager=warning is None, warning=warning)


def _forget(request: AwsDownRequest, deployment: str) -> str | None:
    """Have the manager forget ``deployment`` (its live debug sessions end at once); why it was
    not told, or ``None``. Never raises: the role is deleted either way."""
    if not request.token or not request.manager:
        return (
            f"the manager was not told (set ALIEN_DEPLOYMENT_TOKEN and --manager): it still "
            f"lists {deployment}, but can no longer reach this account"
        )
    try:
        config = ClientConfig(base_url=check_manager_url(request.manager), token=request.token)
        with ManagerClient(config) as client:
            client.call(calls.delete_deployment(deployment))
    except NotFound:
        return None  # forgotten before (a down run again after its role deletion failed)
    except AlienError as exc:
        return f"the manager was not told: {exc.message}"
    return None


def _register(client: ManagerClient, name: str, region: str, role_arn: str) -> AwsOnboarded | None:
    """The registration, or ``None`` if the deployment was registered before (``up`` run again
    to bring the role up to date)."""
    deadline = time.monotonic() + PROPAGATION_SECONDS
    while True:
        try:
            return client.call(calls.aws_onboard(name, region, role_arn))
        except AlienError as exc:
            if exc.code == "NAME_TAKEN":
                return None
            if exc.code != "ROLE_NOT_ASSUMABLE" or time.monotonic() > deadline:
                raise
        time.sleep(2.0)


def _show(plan: AwsOnboardingPlan, spec: RoleSpec, account: str, region: str, say: Any) -> None:
    statements = plan.permissions.get("Statement", [])
    say(f"onboarding {spec.deployment} in AWS account {account} ({region})")
    say(f"  role          {spec.name} (inline policy {plan.role_policy_name})")
    say(f"  trusted       {plan.principal}, only with external id {plan.external_id}")
    say(f"  permissions   {len(statements)} statements from {plan.stack} ({plan.release_id})")
    say(f"  debug reaches {', '.join(plan.allowed_services)}")


def _aws(action: Any) -> Any:
    """Run an AWS call with the customer's credentials; its failure as one clear line."""
    try:
        return action()
    except NoCredentialsError:
        raise PlatformError(
            "no AWS credentials: configure them as for the aws CLI (AWS_PROFILE, aws sso login, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
            field="aws",
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise PlatformError(
            f"AWS refused: {error.get('Code', 'error')}: {error.get('Message', '')}", field="aws"
        ) from None
    except BotoCoreError as exc:
        raise PlatformError(f"AWS could not be reached: {exc}", field="aws") from None
