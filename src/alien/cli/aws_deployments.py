"""``alien deployments register-aws``: register a push-model AWS deployment (admin).

The customer created a management role in their account that trusts the vendor's identity;
this records it. No agent runs: the manager assumes the role (with its own AWS identity, from
boto3's default credential chain) when a debug session needs the account.
"""

from __future__ import annotations

from typing import Annotated

import typer

from alien.cli.deployments import deployments_app, manager_client
from alien.cli.options import JsonOption, ManagerOption, TokenOption
from alien.cli.output import console, fail, render, reporting_errors
from alien.debug import api
from alien.debug.api import AwsDeployment


def _registered(result: AwsDeployment) -> None:
    dep, aws = result.deployment, result.aws
    console.print(
        f"registered {dep.ref} ({dep.id}): AWS {aws.region}, role {aws.role_arn}, "
        f"services {', '.join(aws.allowed_services)}",
        markup=False,
        highlight=False,
    )


def register_aws(
    deployment: Annotated[str, typer.Argument(help="<group>/<name> of the new deployment.")],
    region: Annotated[str, typer.Option("--region", help="e.g. eu-west-1")],
    role_arn: Annotated[str, typer.Option("--role-arn", help="The customer's management role.")],
    service: Annotated[
        list[str],
        typer.Option("--service", help="An AWS service debugging may reach (repeat): s3, sts, …"),
    ],
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="The role's sts:ExternalId condition.")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url", help="Send AWS calls here instead (emulator, VPC endpoint)."
        ),
    ] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a push-model AWS deployment that `alien debug` can reach."""
    group, slash, name = deployment.partition("/")
    if not slash or not group or not name or "/" in name:
        fail("name the deployment as <group>/<name>")
    call = api.register_aws(
        group=group,
        name=name,
        region=region,
        role_arn=role_arn,
        allowed_services=service,
        external_id=external_id,
        endpoint_url=endpoint_url,
    )
    with reporting_errors(), manager_client(manager, token) as client:
        result = client.call(call)
    render(result.model_dump(mode="json") if as_json else result, as_json, _registered)


def register(app: typer.Typer) -> None:
    """Add ``register-aws`` to the ``alien deployments`` group."""
    deployments_app.command("register-aws")(register_aws)
