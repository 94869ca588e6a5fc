"""``alien approvals ls|approve|deny``: the vendor's side of approvals.

::

    alien approvals ls [--deployment acme/prod] [--state pending|approved|denied|withdrawn]
    alien approvals approve dbg_0123… [--for 30m] [--note "INC-42"]
    alien approvals deny cmd_0123… [--note "not during the freeze"]

Needs an API key whose role may decide approvals (see ``alien keys``); a group-scoped key sees
its groups only, and nobody approves their own request. The customer decides with
``alien-deploy approve|deny`` on their side; when both must approve, ``approve`` says who is
still awaited.
"""

from __future__ import annotations

from typing import Annotated

import typer

from alien.cli.approvals_view import approval_line, pending_table
from alien.cli.deployments import manager_client
from alien.cli.options import (
    JsonOption,
    ManagerOption,
    TokenOption,
    naming_flags,
    parse_duration,
)
from alien.cli.output import console, render, reporting_errors
from alien.client import approvals

approvals_app = typer.Typer(
    name="approvals",
    help="Debug sessions and commands waiting for approval: list, approve, deny.",
    no_args_is_help=True,
)

Subject = Annotated[str, typer.Argument(help="The dbg_… session or cmd_… command.")]
Note = Annotated[str | None, typer.Option("--note", help="Recorded in the audit trail.")]


@approvals_app.command("ls")
def list_(
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment (id or group/name).")
    ] = None,
    state: Annotated[
        str, typer.Option("--state", help="pending (default), approved, denied or withdrawn.")
    ] = "pending",
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """What waits for a decision (or was decided), oldest first."""
    with reporting_errors(), manager_client(manager, token) as client:
        items = client.call(approvals.list_approvals(None if state == "all" else state, deployment))
    render([a.model_dump(mode="json") for a in items] if as_json else items, as_json, pending_table)


@approvals_app.command()
def approve(
    subject: Subject,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for", help="How long a debug session may run: 30m, 2h, 900 (seconds); 1s to 12h."
        ),
    ] = None,
    note: Note = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve as the vendor's approver."""
    with reporting_errors():
        grant = parse_duration(for_, "--for") if for_ is not None else None
        with manager_client(manager, token) as client, naming_flags(grant_seconds="--for"):
            info = client.call(approvals.approve(subject, grant, note))
    render(info.model_dump(mode="json"), as_json, lambda _: console.print(approval_line(info)))


@approvals_app.command()
def deny(
    subject: Subject,
    note: Note = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deny: a debug session ends, a command is cancelled."""
    with reporting_errors(), manager_client(manager, token) as client:
        info = client.call(approvals.deny(subject, note))
    render(info.model_dump(mode="json"), as_json, lambda _: console.print(approval_line(info)))


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app)
