"""How every CLI command reports results and failures.

Commands return data; this module renders it: ``--json`` prints machine-readable JSON on stdout,
otherwise rich tables/text. Failures are one line on stderr and a non-zero exit code, never a
traceback: an ``AlienError`` exits 1 with its message, bad usage exits 2 (typer's convention).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from alien.errors import AlienError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


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


def printable(text: str) -> str:
    """Text another party chose (a debug reason, an approval note, an agent's error, a name) as
    one inert line: control characters and bidirectional overrides shown escaped (``\\n``,
    ``\\x1b``, ``\\u202e``), so it can neither start a row of its own in a table nor move the
    cursor, recolour or hide what the reader sees before they approve something."""
    return _UNSAFE.sub(lambda found: _escape(found.group()), text)


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def cells(values: Iterable[object]) -> list[Text]:
    """Table cells of plain text: :func:`printable`, and never read as rich markup (a reason
    holding ``[link=…]`` or ``[red]`` is shown as typed)."""
    from rich.text import Text

    return [Text(printable(str(value))) for value in values]


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
