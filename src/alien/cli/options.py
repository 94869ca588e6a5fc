"""The options every manager-facing command shares, in a module that loads nothing but typer:
``alien debug <deployment>`` declares them too, and must not wait for httpx and the client's
models (see ``alien.client.lite``)."""

from __future__ import annotations

from typing import Annotated

import typer

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
