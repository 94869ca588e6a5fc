"""``/v1/aws-deployments``: register a push-model AWS deployment (admin) and read its config.

Kept off ``/v1/deployments/{ref:path}/…`` on purpose: that route's ``{ref:path}`` would swallow
any suffix added after it by another router.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from alien.errors import NotFound
from alien.manager.api.debug_views import Audit, aws_config_out
from alien.manager.api.deps import Core, require
from alien.manager.api.views import deployment_out
from alien.manager.auth import Action, Principal, authorize
from alien.manager.debug_schemas import AwsConfigOut, AwsDeploymentCreate, AwsDeploymentOut
from alien.manager.services import aws_deployments
from alien.manager.services.deployments import visible_deployment
from alien.manager.services.groups import get_group
from alien.platforms.aws import preload

router = APIRouter(tags=["debugging"])
Registrar = Annotated[Principal, Depends(require(Action.DEPLOYMENTS_REGISTER))]
Reader = Annotated[Principal, Depends(require(Action.DEPLOYMENT_READ))]


@router.post("/v1/aws-deployments", status_code=201, response_model=AwsDeploymentOut)
def register_aws_deployment(
    body: AwsDeploymentCreate, core: Core, log: Audit, caller: Registrar
) -> AwsDeploymentOut:
    """Register a push-model AWS deployment: no agent; the manager assumes ``role_arn`` (with
    its own AWS identity, boto3's default credential chain) to serve debug sessions.
    ``allowed_services`` is the allowlist of SigV4 signing names debug traffic may reach."""
    registration = aws_deployments.AwsRegistration(
        name=body.name,
        region=body.region,
        role_arn=body.role_arn,
        allowed_services=body.allowed_services,
        external_id=body.external_id,
        endpoint_url=body.endpoint_url,
    )
    with core.db.write() as session:
        group = get_group(session, body.group, groups=caller.groups)
        dep, config = aws_deployments.register(
            session, log, caller, group, registration, metadata=body.metadata
        )
        preload.prepare_in_background()
        return AwsDeploymentOut(
            deployment=deployment_out(session, dep, core.agents), aws=aws_config_out(config)
        )


@router.get("/v1/aws-deployments/{ref:path}", response_model=AwsConfigOut)
def get_aws_config(ref: str, core: Core, caller: Reader) -> AwsConfigOut:
    with core.db.read() as session:
        dep = visible_deployment(session, caller, ref)
        authorize(caller, Action.DEPLOYMENT_READ, deployments=[dep.id])
        config = aws_deployments.get_config(session, dep.id)
        if config is None:
            raise NotFound(f"deployment {ref!r} is not a push-model AWS deployment", field="ref")
        return aws_config_out(config)
