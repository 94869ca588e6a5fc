"""Which command groups make up ``alien``: one line per group, each defined in its own module."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    """Attach every command group to the top-level ``alien`` app."""
    # Each module exposes ``register(app)``; add new groups here.
    from alien.cli import stack as stack_cli

    stack_cli.register(app)
    from alien.cli import serve as serve_cli

    serve_cli.register(app)
    from alien.cli import dev as dev_cli

    dev_cli.register(app)
    from alien.cli import release as release_cli

    release_cli.register(app)
    from alien.cli import deployments as deployments_cli

    deployments_cli.register(app)
    from alien.cli import groups as groups_cli

    groups_cli.register(app)
    from alien.cli import keys as keys_cli

    keys_cli.register(app)
    from alien.cli import debug as debug_cli

    debug_cli.register(app)
    from alien.cli import commands as commands_cli

    commands_cli.register(app)
    from alien.cli import approvals as approvals_cli

    approvals_cli.register(app)
