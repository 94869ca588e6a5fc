"""``/v1/health``: liveness and database reachability, no token needed (for load balancers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text

from alien import __version__
from alien.manager.api.deps import Core, require
from alien.manager.auth import Action
from alien.manager.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=Health)
def health(core: Core, _: Annotated[None, Depends(require(Action.HEALTH))]) -> Health:
    with core.db.read() as session:
        session.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database=core.db.engine.dialect.name)
