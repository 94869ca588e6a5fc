"""``alien release``: ship the app in the current directory to deployments.

Loads and validates ``alien_stack.py``, builds the deterministic package, uploads it (skipped
when the manager already has the same bytes), creates the release and marks it desired for the
targets (default: every deployment); connected agents get it at once. Prints the release id alone
on stdout (``--json``: the whole release), so ``REL=$(alien release)`` works in scripts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from alien.cli.deployments import manager_client
from alien.cli.groups import check_reference
from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import err_console, print_json, reporting_errors
from alien.client.publish import publish, targets_for
from alien.errors import AlienError

SCOPED_HINT = "name its group with --group, or deployments with --deployment"
"""What a group-scoped key must say instead of the default ``--all``."""


@contextmanager
def _hinting_scope() -> Iterator[None]:
    """A group-scoped key may not release to every deployment, and ``--all`` is the default: a
    plain ``alien release`` is refused for a choice the user never typed, so say what to type."""
    try:
        yield
    except AlienError as exc:
        if exc.field == "targets.type":
            exc.message = f"{exc.message} (--all, the default): {SCOPED_HINT}"
            exc.field = None
        raise


def _flags(deployments: list[str]) -> dict[str, str]:
    """The API fields of the targets and the flags that filled them."""
    flags = {"targets.group.group": "--group", "targets.group": "--group"}
    flags |= {f"targets.deployments.{i}": "--deployment" for i in range(len(deployments))}
    return flags | {"targets.deployments": "--deployment", "description": "--description"}


def release(
    path: Annotated[
        Path | None,
        typer.Option("--path", help="App directory (holding alien_stack.py); default: here."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every deployment (the default).")] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Every deployment of a group.")
    ] = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", help="A deployment (dep_… or group/name); repeatable."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="A note.")] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Package the app, upload it and make it the desired release of the targets."""
    with reporting_errors():
        if group is not None:
            check_reference(group, "--group")
        targets = targets_for(all_=all_, group=group, deployments=deployment or ())
        with (
            manager_client(manager, token) as client,
            _hinting_scope(),
            naming_flags(**_flags(deployment or [])),
        ):
            published = publish(client, path, targets, description=description)
    rel = published.release
    if as_json:
        print_json(
            rel.model_dump(mode="json", exclude={"manifest"})
            | {"uploaded": published.uploaded, "files": published.package.files}
        )
        return
    print(rel.id, flush=True)
    upload = "uploaded" if published.uploaded else "already uploaded"
    err_console.print(
        f"release {rel.id} of {rel.stack_name}: package {rel.package_digest[:19]}… "
        f"({rel.package_size} bytes, {upload}), sent to {len(rel.deployments)} deployment(s)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Attach ``release`` to the top-level ``alien`` app."""
    app.command("release")(release)
