"""``alien`` loads only the command group being run; the table saying which modules make each
group must match what the modules register, and help must still list every group."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer

from alien.cli.commands_registry import GROUPS, modules_for


def _names(app: typer.Typer) -> set[str]:
    groups = {g.name or g.typer_instance.info.name for g in app.registered_groups}
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    return {n for n in groups | commands if n}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_group_loads_with_its_own_modules_only(group: str) -> None:
    app = typer.Typer()
    for module in GROUPS[group]:
        importlib.import_module(module).register(app)
    assert _names(app) == {group}


def test_a_group_on_the_command_line_selects_its_modules() -> None:
    assert modules_for(["debug", "acme/prod", "--", "aws", "s3", "ls"]) == ["alien.cli.debug"]
    assert modules_for(["--help"]) == modules_for([]) == modules_for(["no-such-group"])
    assert len(modules_for([])) == sum(len(m) for m in GROUPS.values())


@pytest.mark.parametrize("command", ["serve", "release", "debug"])
def test_a_lone_command_still_runs_as_a_subcommand(command: str) -> None:
    """Typer runs an app with a single command as that command; ``alien serve`` must not."""
    shown = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", command, "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert f"alien.cli.main {command}" in shown.stdout


def test_help_lists_every_group_and_a_group_runs_alone() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", "--help"], capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert all(group in listed.stdout for group in GROUPS)
    probe = (
        "import sys; sys.argv = ['alien', 'debug', '--help']; import alien.cli.main; "
        "print(sorted(m for m in ('sqlalchemy', 'alien.platforms.local', 'alien.sdk') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr  # what made `alien debug` start slowly
