"""``alien serve``: run the manager (control plane).

Configuration: ``ALIEN_DATA_DIR``, ``ALIEN_DATABASE_URL``, ``ALIEN_ADMIN_KEY``,
``ALIEN_MAX_PACKAGE_BYTES``; flags win over the environment. ``--port 0`` picks a free port; the
URL is printed as ``alien manager listening on http://HOST:PORT``. One manager serves a database
at a time: a second one refuses to start, or with ``--standby`` waits to take over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alien.cli.output import reporting_errors


def serve(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the database and packages live [ALIEN_DATA_DIR]."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free port.")] = 8080,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="postgresql+psycopg://… (default: SQLite in the data dir) [ALIEN_DATABASE_URL].",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug|info|warning")] = "info",
    standby: Annotated[
        bool,
        typer.Option(
            "--standby",
            help="If another manager serves this database, wait and take over when it stops "
            "(same data dir), instead of refusing to start.",
        ),
    ] = False,
) -> None:
    """Run the alien manager: API, releases and the agent channel."""
    from alien.manager.server import serve as run_server
    from alien.manager.settings import ManagerSettings

    with reporting_errors():
        settings = ManagerSettings.from_env(data_dir=data_dir, database_url=database_url)
        run_server(settings, host=host, port=port, log_level=log_level, standby=standby)


def register(app: typer.Typer) -> None:
    """Attach ``serve`` to the top-level ``alien`` app."""
    app.command("serve")(serve)
