"""``alien keys create|ls|revoke``: vendor API keys, each with a role and optionally confined to
some deployment groups.

::

    alien keys create --role operator --group eu-prod --group eu-staging --name ci
    alien keys ls
    alien keys revoke key_0123456789abcdef

``create`` prints the new key (``ax_key_…``) alone on stdout, so a script can capture it; the
manager shows it this once and stores only its hash. Roles: ``admin`` (everything), ``operator``
(releases, commands, groups and their tokens), ``debugger`` (debug sessions), ``viewer``
(read-only). A key with ``--group`` sees and acts only on those groups' deployments, releases,
commands and debug sessions. Only an unscoped admin key may manage keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

from alien.cli.deployments import manager_client, print_table
from alien.cli.groups import check_reference
from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import cells, console, err_console, print_json, render, reporting_errors
from alien.client.call import path_segment
from alien.client.calls import Call, decode_model, decode_page
from alien.manager.auth import Role

keys_app = typer.Typer(
    name="keys", help="Vendor API keys: roles and group scopes.", no_args_is_help=True
)


class KeyGroup(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str


class ApiKey(BaseModel):
    """An API key as the manager describes it (never with its secret, except once: ``key``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str
    role: str
    groups: list[KeyGroup] | None = None
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None
    key: str | None = Field(default=None, repr=False)

    @property
    def scope(self) -> str:
        return "all groups" if self.groups is None else ", ".join(g.name for g in self.groups)

    def public(self) -> dict[str, Any]:
        """The JSON form without the secret."""
        return self.model_dump(mode="json", exclude={"key"})


def create_call(name: str, role: Role, groups: list[str] | None) -> Call[ApiKey]:
    body: dict[str, Any] = {"name": name, "role": role.value}
    if groups:
        body["groups"] = groups
    return Call("POST", "/v1/api-keys", decode_model(ApiKey), json=body)


def list_call() -> Call[list[ApiKey]]:
    return Call("GET", "/v1/api-keys", decode_page(ApiKey))


def revoke_call(key_id: str) -> Call[ApiKey]:
    return Call("DELETE", f"/v1/api-keys/{path_segment(key_id, 'key')}", decode_model(ApiKey))


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option("--role", help="admin, operator, debugger or viewer.")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Confine the key to this group (repeat); default: all."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "key",
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; it is printed once, on stdout."""
    groups = group or []
    flags = {f"groups.{i}": "--group" for i in range(len(groups))}
    with reporting_errors():
        for ref in groups:
            check_reference(ref, "--group")
        with (
            manager_client(manager, token) as client,
            naming_flags(**flags, groups="--group", name="--name", role="--role"),
        ):
            created = client.call(create_call(name, role, groups))
    if as_json:
        print_json(created.public() | {"key": created.key})
        return
    print(created.key, flush=True)
    err_console.print(
        f"API key {created.id} ({created.role}, {created.scope}): shown only now",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _table(keys: list[ApiKey]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "NAME", "ROLE", "GROUPS", "CREATED", "REVOKED"):
        table.add_column(column)
    for key in keys:
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        created = key.created_at.isoformat(timespec="seconds")
        table.add_row(*cells((key.id, key.name, key.role, key.scope, created, revoked)))
    print_table(table)


@keys_app.command("ls")
def list_keys(
    manager: ManagerOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List API keys (revoked ones included, marked)."""
    with reporting_errors(), manager_client(manager, token) as client:
        keys = client.call(list_call())
    render([k.public() for k in keys] if as_json else keys, as_json, _table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key at once; it is refused from its next request on."""
    with reporting_errors(), manager_client(manager, token) as client:
        key = client.call(revoke_call(key_id))
    render(
        key.public() if as_json else key,
        as_json,
        lambda k: console.print(f"revoked {k.id} ({k.name})", highlight=False, markup=False),
    )


def register(app: typer.Typer) -> None:
    """Attach ``keys`` to the top-level ``alien`` app."""
    app.add_typer(keys_app)
