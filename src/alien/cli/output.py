"""How every CLI command reports results and failures.

Commands return data; this module renders it: ``--json`` prints machine-readable JSON on stdout,
otherwise rich tables/text. Failures are one line on stderr and a non-zero exit code, never a
traceback: an ``AlienError`` exits 1 with its message, bad usage exits 2 (typer's convention).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

from alien.errors import AlienError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn any ``AlienError`` raised inside into a one-line message and exit code 1."""
    try:
        yield
    except AlienError as exc:
        where = f" ({exc.field})" if exc.field else ""
        fail(f"{exc.message}{where}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def render(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON when asked, else through the command's own ``human`` renderer."""
    if as_json:
        print_json(data)
    else:
        human(data)
