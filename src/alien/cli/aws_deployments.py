"""``alien deployments register-aws``: register a push-model AWS deployment (admin).

The customer created a management role in their account that trusts the vendor's identity;
this records it. No agent runs: the manager assumes the role (with its own AWS identity, from
boto3's default credential chain) when a debug session needs the account.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from alien.cli.deployments import deployments_app, manager_client
from alien.cli.groups import check_name
from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import console, fail, render, reporting_errors
from alien.debug import api
from alien.debug.api import AwsDeployment
from alien.errors import AlienError


@contextmanager
def _in_words(rules: dict[str, str]) -> Iterator[None]:
    """The manager refuses a value that does not match a pattern by quoting the regex (or by
    pydantic's ``Value error, …``); say the rule (``rules``: API field → what the value should
    have been) instead. Other refusals (a length, say) are plain already."""
    try:
        yield
    except AlienError as exc:
        rule = rules.get(exc.field or "")
        if rule is not None and (
            "should match pattern" in exc.message or "Value error" in exc.message
        ):
            exc.message = rule
        raise


def _rules(
    region: str,
    role_arn: str,
    services: list[str],
    external_id: str | None,
    endpoint_url: str | None,
) -> dict[str, str]:
    rules = {
        "region": f"{region!r} is not an AWS region (like eu-west-1)",
        "role_arn": f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)",
        "external_id": "the external id may hold letters, digits and _+=,.@:/- only",
        "endpoint_url": f"{endpoint_url!r} is not an http:// or https:// URL",
    }
    for i, service in enumerate(services):
        rules[f"allowed_services.{i}"] = (
            f"{service!r} is not an AWS service's signing name (lowercase, like s3, sts, dynamodb)"
        )
    return rules


def _flags(services: list[str]) -> dict[str, str]:
    """The API fields of the request and the flags (or argument) that filled them."""
    flags = {f"allowed_services.{i}": "--service" for i in range(len(services))}
    return flags | {
        "allowed_services": "--service",
        "group": "DEPLOYMENT",
        "name": "DEPLOYMENT",
        "region": "--region",
        "role_arn": "--role-arn",
        "external_id": "--external-id",
        "endpoint_url": "--endpoint-url",
    }


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
    with reporting_errors():
        check_name(name, "deployment name", "DEPLOYMENT")
    call = api.register_aws(
        group=group,
        name=name,
        region=region,
        role_arn=role_arn,
        allowed_services=service,
        external_id=external_id,
        endpoint_url=endpoint_url,
    )
    with (
        reporting_errors(),
        manager_client(manager, token) as client,
        naming_flags(**_flags(service)),
        _in_words(_rules(region, role_arn, service, external_id, endpoint_url)),
    ):
        result = client.call(call)
    render(result.model_dump(mode="json") if as_json else result, as_json, _registered)


def register(app: typer.Typer) -> None:
    """Add ``register-aws`` to the ``alien deployments`` group."""
    deployments_app.command("register-aws")(register_aws)
