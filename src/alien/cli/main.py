"""The ``alien`` command: the vendor engineer's tool.

Each command group lives in its own module under ``alien.cli`` and is registered here; modules stay
thin (parse, call, render) and keep their logic in the layers below.
"""

from __future__ import annotations

import sys

import typer

from alien.cli.fast_params import FastParamsGroup
from alien.redaction import install_logging_redaction

app = typer.Typer(
    name="alien",
    cls=FastParamsGroup,  # `alien debug` starts on a clock: see alien.cli.fast_params
    help="Ship and operate your software inside your customers' environments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _alien() -> None:
    """Ship and operate your software inside your customers' environments."""
    # A group callback keeps `alien serve …` a subcommand even when `serve` is the only command
    # loaded (typer runs a lone command as the app itself).


def _register() -> None:
    # Only the group being run is imported (see commands_registry): start-up time matters.
    from alien.cli import commands_registry

    commands_registry.register(app, sys.argv[1:])


_register()
# Whatever a command or a library logs is redacted (tokens, registered secrets, secret shapes).
install_logging_redaction()

if __name__ == "__main__":
    app()
