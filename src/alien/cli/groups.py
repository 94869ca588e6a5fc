"""``alien groups create|ls`` and ``alien groups token create|ls|revoke``: where deployments
onboard.

``token create`` prints the new onboarding token (``ax_dg_…``) alone on stdout, so a script can
capture it; the manager shows it this once and stores only its hash. Give it to the customer's
admin for ``alien-deploy up --token``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from alien.cli.deployments import manager_client, print_rows, print_table
from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import cells, console, err_console, print_json, render, reporting_errors
from alien.client import calls
from alien.client.call import Call
from alien.client.models import Group
from alien.errors import ValidationError

T = TypeVar("T")

# The manager's rule for group and deployment names (``alien.manager.schemas.Name``; a test
# keeps the two equal). Not imported: loading the manager's schemas costs a command ~0.5 s.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
NAME_RULE = (
    "lowercase letters, digits and '-', 1-63 characters, starting and ending with a letter or digit"
)
_NAME = re.compile(NAME_PATTERN)


def check_name(value: str, what: str, where: str) -> None:
    """Refuse a name the manager would, before the call, with the rule in words: the manager's
    refusal names its own field and quotes a regex."""
    if not _NAME.fullmatch(value):
        raise ValidationError(f"{value!r} is not a valid {what}: {NAME_RULE}", field=where)


def check_reference(value: str, where: str) -> None:
    """A group named by name or id: an empty one can only be refused, so say so in the flag's
    terms."""
    if not value:
        raise ValidationError(f"{where} is empty: give a group name or id", field=where)


groups_app = typer.Typer(
    name="groups", help="Deployment groups and their tokens.", no_args_is_help=True
)
token_app = typer.Typer(name="token", help="Onboarding tokens of a group.", no_args_is_help=True)
groups_app.add_typer(token_app)


@groups_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help=f"The group's name: {NAME_RULE}.")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a deployment group."""
    with reporting_errors():
        check_name(name, "group name", "NAME")
        with (
            manager_client(manager, token) as client,
            naming_flags(name="NAME", description="--description"),
        ):
            group = client.create_group(name, description)
    if as_json:
        print_json(group.model_dump(mode="json"))
    else:
        console.print(f"group {group.name} ({group.id})", highlight=False)


def _table(groups: list[Group]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("GROUP", "ID", "DEPLOYMENTS", "DESCRIPTION"):
        table.add_column(column)
    for group in groups:
        table.add_row(
            *cells((group.name, group.id, group.deployment_count, group.description or ""))
        )
    print_table(table)


@groups_app.command("ls")
def list_groups(
    manager: ManagerOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List deployment groups."""
    with reporting_errors(), manager_client(manager, token) as client:
        groups = client.list_groups()
    if as_json:
        print_json([g.model_dump(mode="json") for g in groups])
    elif not groups:
        console.print("no groups yet", highlight=False)
    else:
        _table(groups)


@token_app.command("create")
def create_token(
    group: Annotated[str, typer.Argument(help="Group name or id.")],
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "default",
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an onboarding token; it is printed once, on stdout."""
    created = _token_call(group, manager, token, lambda: calls.create_group_token(group, name))
    if as_json:
        print_json(created.model_dump(mode="json") | {"token": created.token})
        return
    print(created.token, flush=True)
    err_console.print(
        f"onboarding token {created.id} for group {group}: shown only now; "
        "it can onboard deployments and nothing else",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Attach ``groups`` to the top-level ``alien`` app."""
    app.add_typer(groups_app)


@token_app.command("ls")
def list_tokens(
    group: Annotated[str, typer.Argument(help="Group name or id.")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The group's onboarding tokens, never their secrets: who made each, last use, revoked."""
    tokens = _token_call(group, manager, token, lambda: calls.list_group_tokens(group))
    rows = [
        (
            t.id,
            t.name,
            t.created_by or "-",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
            str(t.use_count),
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
        for t in tokens
    ]
    headers = ("ID", "NAME", "BY", "CREATED", "LAST USED", "USES", "REVOKED")
    render(
        [t.model_dump(mode="json", exclude={"token"}) for t in tokens],
        as_json,
        lambda _: print_rows(headers, rows, ("ID", "BY")),
    )


@token_app.command("revoke")
def revoke_token(
    group: Annotated[str, typer.Argument(help="Group name or id.")],
    token_id: Annotated[str, typer.Argument(help="The token's id (gtk_…, from token ls).")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an onboarding token now; the deployments it onboarded keep working."""
    revoked = _token_call(group, manager, token, lambda: calls.revoke_group_token(group, token_id))
    render(
        revoked.model_dump(mode="json", exclude={"token"}),
        as_json,
        lambda _: console.print(
            f"onboarding token {revoked.id} of group {group} revoked", highlight=False
        ),
    )


def _token_call(
    group: str, manager: str | None, token: str | None, make: Callable[[], Call[T]]
) -> T:
    """One call on ``group``'s onboarding tokens; a refusal (building the call included) in
    one line, in the flags' terms."""
    with reporting_errors():
        check_reference(group, "GROUP")
        with manager_client(manager, token) as client, naming_flags(name="--name", group="GROUP"):
            answer = client.call(make())
    return answer
