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
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from alien.errors import AlienError

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich ``Console`` made on first use: importing rich costs a command 40-70 ms, and
    ``alien debug``'s run path (on a set-up budget of 0.5 s) prints through it only on failure."""

    def __init__(self, *, stderr: bool) -> None:
        # Names no Console attribute has: every other name goes to the real console.
        self._lazy_stderr = stderr
        self._lazy_console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._lazy_console is None:
            from rich.console import Console

            self._lazy_console = Console(stderr=self._lazy_stderr)
        return getattr(self._lazy_console, name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


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
