"""``alien stack …``: inspect and check the stack an app defines in ``alien_stack.py``.

Thin by design: load with ``alien.stack.load_stack``, then render. ``show --json`` prints exactly
the canonical manifest bytes (``dump_manifest``), so its output can be hashed or diffed.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from alien.cli.output import console, print_json, render, reporting_errors
from alien.stack import (
    FunctionSpec,
    Manifest,
    QueueSpec,
    ResourceSpec,
    derive_permissions,
    dump_manifest,
    load_stack,
    manifest_digest,
)

stack_app = typer.Typer(
    name="stack",
    help="Inspect and validate the stack defined in alien_stack.py.",
    no_args_is_help=True,
)

PathOption = Annotated[
    Path | None,
    typer.Option("--path", help="App directory or stack file (default: the current directory)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


class PlatformChoice(StrEnum):
    LOCAL = "local"
    AWS = "aws"


def _manifest(path: Path | None) -> Manifest:
    loaded = load_stack(path)
    return loaded.manifest()


def _details(spec: ResourceSpec) -> str:
    if isinstance(spec, QueueSpec):
        return f"visibility timeout {spec.config.visibility_timeout}s"
    if not isinstance(spec, FunctionSpec):
        return ""
    config = spec.config
    parts = [f"code {config.code.src} ({config.code.entrypoint})", f"ingress {config.ingress}"]
    if config.links:
        parts.append("links " + ", ".join(config.links))
    triggers = []
    for t in config.triggers:
        if t.type == "cron":
            triggers.append(f"cron {t.name} '{t.schedule}'")
        elif t.type == "storage":
            triggers.append(f"storage {t.storage} ({'/'.join(t.events)})")
        else:
            triggers.append(f"queue {t.queue}")
    if triggers:
        parts.append("triggers " + ", ".join(triggers))
    if config.commands_enabled:
        parts.append("commands enabled")
    if config.env:
        parts.append("env " + ", ".join(sorted(config.env)))  # names only: values stay private
    return "; ".join(parts)


def _show_table(manifest: Manifest) -> None:
    table = Table(title=f"stack {manifest.name}", title_justify="left")
    for column in ("resource", "kind", "lifecycle", "details"):
        table.add_column(column)
    for spec in manifest.resources:
        table.add_row(Text(spec.id), Text(spec.kind), Text(spec.lifecycle), Text(_details(spec)))
    console.print(table)
    console.print(Text(f"manifest digest {manifest_digest(manifest)}"), soft_wrap=True)


@stack_app.command("show")
def show(path: PathOption = None, as_json: JsonOption = False) -> None:
    """Show the stack's resources (--json: the canonical manifest)."""
    with reporting_errors():
        manifest = _manifest(path)
    if as_json:
        sys.stdout.write(dump_manifest(manifest).decode("ascii"))
        sys.stdout.flush()
    else:
        _show_table(manifest)


@stack_app.command("validate")
def validate(path: PathOption = None, as_json: JsonOption = False) -> None:
    """Check the stack, including that code directories exist; exit 1 naming each problem."""
    with reporting_errors():
        manifest = _manifest(path)
    result = {
        "valid": True,
        "name": manifest.name,
        "resources": len(manifest.resources),
        "digest": manifest_digest(manifest),
    }

    def human(data: dict[str, Any]) -> None:
        summary = f"stack {data['name']} is valid: {data['resources']} resources, {data['digest']}"
        console.print(Text(summary), soft_wrap=True)

    render(result, as_json, human)


def _grants_table(data: dict[str, Any]) -> None:
    table = Table(title=f"management permissions for {data['stack']} (local)", title_justify="left")
    for column in ("resource", "lifecycle", "actions"):
        table.add_column(column)
    for grant in data["grants"]:
        table.add_row(
            Text(grant["resource"]), Text(grant["lifecycle"]), Text(", ".join(grant["actions"]))
        )
    console.print(table)


@stack_app.command("permissions")
def permissions(
    platform: Annotated[
        PlatformChoice, typer.Option("--platform", help="Whose permission format to print.")
    ] = PlatformChoice.LOCAL,
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", help="AWS resource name prefix (default: the stack name)."),
    ] = None,
    region: Annotated[str, typer.Option("--region", help="AWS region for ARNs.")] = "*",
    account: Annotated[str, typer.Option("--account", help="AWS account id for ARNs.")] = "*",
    path: PathOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the management identity may do: monitor every resource, update only live ones.

    --platform aws prints an IAM policy document.
    """
    with reporting_errors():
        data = derive_permissions(
            _manifest(path), platform.value, prefix=prefix, region=region, account=account
        )
    if platform == PlatformChoice.AWS:
        print_json(data)
    else:
        render(data, as_json, _grants_table)


def register(app: typer.Typer) -> None:
    """Attach the ``stack`` group to the top-level ``alien`` app."""
    app.add_typer(stack_app, name="stack")
