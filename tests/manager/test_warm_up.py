"""The manager walks its routes before serving: the warm-up request must reach every route,
which holds only while no route serves its path (a catch-all route would stop the walk early)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Match

from alien.manager.app import create_app
from alien.manager.settings import ManagerSettings
from alien.manager.warm_up import WARM_UP_PATH, warm_routes


async def test_the_warm_up_path_is_served_by_no_route(tmp_path: Path) -> None:
    app = create_app(ManagerSettings(data_dir=tmp_path))
    try:
        assert await warm_routes(app) == 404
        for method in ("GET", "POST"):
            scope = {"type": "http", "method": method, "path": WARM_UP_PATH, "root_path": ""}
            assert all(route.matches(scope)[0] is Match.NONE for route in app.router.routes)
    finally:
        app.state.core.close()
