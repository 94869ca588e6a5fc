"""Which command groups make up ``alien``, and loading only the one being run.

Each group lives in its own module with a ``register(app)``. Importing them all costs about a
second (SQLAlchemy for ``keys``, the local platform for ``dev``, …) — most of ``alien debug``'s
start-up, which the engineer waits for before every debugged command. So ``alien <group> …``
imports just that group's modules; ``alien``, ``alien --help`` and anything unknown import them
all (so help and typer's own "no such command" errors stay complete).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

GROUPS: dict[str, tuple[str, ...]] = {
    "stack": ("alien.cli.stack",),
    "serve": ("alien.cli.serve",),
    "dev": ("alien.cli.dev",),
    "release": ("alien.cli.release",),
    "deployments": ("alien.cli.deployments", "alien.cli.aws_deployments"),
    "groups": ("alien.cli.groups",),
    "keys": ("alien.cli.keys",),
    "debug": ("alien.cli.debug",),
    "audit": ("alien.cli.audit",),
    "commands": ("alien.cli.commands",),
    "approvals": ("alien.cli.approvals",),
}
"""Command name → the modules that register it (in this order)."""


def modules_for(argv: Sequence[str]) -> list[str]:
    """The modules to load for a command line (``argv`` without the program name)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    if first in GROUPS:
        return list(GROUPS[first])
    return [module for modules in GROUPS.values() for module in modules]


def register(app: typer.Typer, argv: Sequence[str]) -> None:
    """Attach the groups ``argv`` needs to the top-level ``alien`` app."""
    for module in modules_for(argv):
        importlib.import_module(module).register(app)
