"""``/v1/onboard/aws``: a customer's admin onboards their AWS account with a group token.

``GET`` answers the plan (the role to create: whom it trusts, under which external id, with
which permissions); ``POST`` registers the role once created, after the manager assumed it.
The logic, and why the external id is the manager's to choose, is in
:mod:`alien.manager.services.aws_onboarding`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from alien.manager.api.debug_views import Audit, aws_config_out
from alien.manager.api.deps import Core, require
from alien.manager.api.views import deployment_out
from alien.manager.auth import Action, Principal
from alien.manager.core import ManagerCore
from alien.manager.debug_schemas import (
    AccountId,
    AwsOnboardedOut,
    AwsOnboardingPlanOut,
    AwsOnboardRequest,
    AwsRegion,
)
from alien.manager.models import Group
from alien.manager.schemas import ErrorBody, Name
from alien.manager.services import aws_deployments, aws_onboarding, deployment_tokens
from alien.manager.services.audit import AuditLog
from alien.platforms.aws import preload

router = APIRouter(tags=["deployments"])
Onboarder = Annotated[Principal, Depends(require(Action.ONBOARD))]
_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {
        "model": ErrorBody,
        "description": "the manager has no usable AWS identity (AWS_IDENTITY_UNAVAILABLE)",
    },
}


@router.get("/v1/onboard/aws", response_model=AwsOnboardingPlanOut, responses=_RESPONSES)
def aws_onboarding_plan(
    core: Core,
    caller: Onboarder,
    name: Annotated[Name, Query(description="the deployment's name in the token's group")],
    region: Annotated[AwsRegion, Query(description="the region the deployment runs in")],
    account: Annotated[AccountId, Query()],
) -> AwsOnboardingPlanOut:
    """The management role the customer creates in their account (group token)."""
    secret = aws_onboarding.load_secret(core.settings.data_dir)
    with core.db.read() as session:
        plan = aws_onboarding.plan(
            session,
            caller,
            secret=secret,
            name=name,
            region=region,
            account=account,
            endpoint_url=core.settings.aws_endpoint_url,
        )
    return AwsOnboardingPlanOut(**asdict(plan))


@router.post(
    "/v1/onboard/aws",
    status_code=201,
    response_model=AwsOnboardedOut,
    responses=_RESPONSES,
)
async def aws_onboard(
    body: AwsOnboardRequest, core: Core, log: Audit, caller: Onboarder
) -> AwsOnboardedOut:
    """Register the role the customer created as a push-model AWS deployment in the token's
    group, once the manager assumed it (group token); the answer carries the deployment's own
    token for the customer, shown only here."""
    secret = aws_onboarding.load_secret(core.settings.data_dir)
    with core.db.read() as session:
        registration = aws_onboarding.registration(
            session,
            caller,
            secret=secret,
            name=body.name,
            region=body.region,
            role_arn=body.role_arn,
            endpoint_url=core.settings.aws_endpoint_url,
        )
    # Outside any transaction: an STS round trip must not hold SQLite's write lock.
    await run_in_threadpool(aws_onboarding.check_assumable, registration)
    return await run_in_threadpool(_register, core, log, caller, registration, body.metadata)


def _register(
    core: ManagerCore,
    log: AuditLog,
    caller: Principal,
    registration: aws_deployments.AwsRegistration,
    metadata: dict[str, object],
) -> AwsOnboardedOut:
    with core.db.write() as session:
        group = session.get(Group, caller.group_id)
        assert group is not None  # a group token is refused once its group is gone
        dep, config = aws_deployments.register(
            session, log, caller, group, registration, metadata=metadata
        )
        token = deployment_tokens.issue_for_customer(session, log, caller, dep.id)
        preload.prepare_in_background()
        return AwsOnboardedOut(
            deployment=deployment_out(session, dep, core.agents),
            aws=aws_config_out(config),
            token=token,
        )
