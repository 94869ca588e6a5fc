"""Every command's help, as typer shows it: its one-line summary is one line, and no
reStructuredText quoting (````--flag````) leaks from a docstring into what users read.

typer prints a docstring's first paragraph with its line breaks, so a summary wrapped in the
source showed a line cut after a few words in ``alien-deploy --help``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from alien.cli.deploy import app as deploy_app
from alien.cli.main import app as alien_app


def _commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


ALL = [
    pair
    for app, name in ((alien_app, "alien"), (deploy_app, "alien-deploy"))
    for pair in _commands(typer.main.get_command(app), name)
]


def test_every_command_is_walked() -> None:
    paths = {path for path, _ in ALL}
    assert {"alien commands invoke", "alien debug", "alien-deploy up"} <= paths
    assert len(paths) > 40


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_summaries_are_one_line_without_rst_quoting(path: str, command: Any) -> None:
    text = command.help or ""
    assert "\n" not in text.split("\n\n")[0].strip(), f"{path}: summary wraps in the source"
    assert "``" not in text, f"{path}: reStructuredText quoting in the help"
