"""The options every manager-facing command shares, in a module that loads nothing but typer
(and ``alien.errors``): ``alien debug <deployment>`` declares them too, and must not wait for
httpx and the client's models (see ``alien.client.lite``). Also how a flag's value and the
manager's refusal of it are told in the flag's own terms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from alien.errors import AlienError, ValidationError

ManagerOption = Annotated[
    str | None,
    typer.Option(
        "--manager", help="The manager's URL [ALIEN_MANAGER_URL; default http://127.0.0.1:8080]."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", show_default=False, help="API key [ALIEN_TOKEN or ALIEN_API_KEY]."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

# The longest debug session the manager grants (its ``MAX_TTL_LIMIT``, documented in docs/API.md
# as 1..43200): a grant beyond it can only be refused, so the CLI says so in the flag's terms.
MAX_SESSION_SECONDS = 12 * 3600

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _spoken(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_duration(text: str, flag: str, *, least: int = 1, most: int = MAX_SESSION_SECONDS) -> int:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` → seconds, within ``least``..``most``.

    A duration out of range is told apart from text that is no duration (``0s`` is one, just
    too short), and both name the flag the user typed, not the API field it fills."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValidationError(f"{text!r} is not a duration (like 90s, 30m, 2h)", field=flag)
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if not least <= seconds <= most:
        too = "short" if seconds < least else "long"
        raise ValidationError(
            f"{text!r} is too {too}: give {_spoken(least)} to {_spoken(most)}", field=flag
        )
    return seconds


@contextmanager
def naming_flags(**flags: str) -> Iterator[None]:
    """Say a manager's refusal in the terms of the command line: an error whose ``field`` is an
    API field a flag fills (``ttl_seconds="--ttl"``) names the flag instead, and so does its
    message where it starts with the field (``invalid request at 'ttl_seconds': …``,
    ``ttl_seconds 99999 is over …``). Use inside ``reporting_errors()``, which prints it."""
    try:
        yield
    except AlienError as exc:
        field = exc.field or ""
        flag = flags.get(field)
        if flag is None:
            raise
        for said, say in (
            (f"invalid request at {field!r}:", f"invalid {flag}:"),
            (f"{field} ", f"{flag} "),
        ):
            if exc.message.startswith(said):
                exc.message = say + exc.message.removeprefix(said)
                break
        exc.field = flag
        raise
