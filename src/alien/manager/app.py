"""The FastAPI application of the manager (``create_app``), served by ``alien serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alien import __version__
from alien.manager import debug_http_leg, debug_tunnel
from alien.manager.api import (
    agent,
    command_agent,
    command_blobs,
    deployments,
    errors,
    groups,
    health,
    keys,
    releases,
)
from alien.manager.api import approvals as approvals_api
from alien.manager.api import audit as audit_api
from alien.manager.api import aws_deployments as aws_deployments_api
from alien.manager.api import aws_onboarding as aws_onboarding_api
from alien.manager.api import commands as commands_api
from alien.manager.api import debug as debug_api
from alien.manager.api import policy as policy_api
from alien.manager.api.fast_create import FastCreate
from alien.manager.body_limit import BodyLimit
from alien.manager.commands.center import CommandCenter
from alien.manager.core import ManagerCore, open_core
from alien.manager.schemas import ErrorBody
from alien.manager.services import aws_deployments
from alien.manager.services.keys import ensure_admin_key
from alien.manager.settings import ManagerSettings
from alien.manager.warm_up import warm_routes
from alien.platforms.aws import preload

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "missing, invalid or revoked token",
        403: "the token may not do this",
        404: "no such thing",
        409: "conflicts with the current state",
        422: "invalid input; error.field names it",
    }.items()
}


def create_app(settings: ManagerSettings, *, core: ManagerCore | None = None) -> FastAPI:
    """Build the manager app.

    Without ``core`` this opens the database (migrating it) and installs ``settings.admin_key``
    if given; ``alien serve`` opens the core itself, after binding its socket, and creates a
    generated admin key only once it serves (``alien.manager.server._first_admin_key``).
    """
    if core is None:
        core = open_core(settings)
        ensure_admin_key(core.db, settings.admin_key)
    opened = core
    commands = CommandCenter(core)

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        with opened.db.read() as session:
            if aws_deployments.any_registered(session):
                preload.prepare_in_background()
        await warm_routes(served)  # before the first request, not during it
        async with commands.running():
            yield
        opened.close()

    app = FastAPI(
        title="alien manager",
        version=__version__,
        description="Control plane of alien: deployment groups, deployments, releases and the "
        'agent channel. Errors are always {"error": {"code", "message", "field"}}.',
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.core = core
    app.state.commands = commands
    errors.install(app)
    app.include_router(health.router)
    # Commands first: the hottest routes are matched before the rest are tried.
    for module in (commands_api, command_agent):
        app.include_router(module.router, responses=_ERROR_RESPONSES)
    for module in (keys, groups, deployments, releases, agent):
        app.include_router(module.router, responses=_ERROR_RESPONSES)
    app.include_router(aws_deployments_api.router, responses=_ERROR_RESPONSES)
    app.include_router(aws_onboarding_api.router, responses=_ERROR_RESPONSES)
    app.include_router(debug_api.router, responses=_ERROR_RESPONSES)
    app.include_router(debug_tunnel.router)
    app.include_router(debug_http_leg.router, responses=_ERROR_RESPONSES)
    app.include_router(audit_api.router, responses=_ERROR_RESPONSES)
    app.include_router(policy_api.router, responses=_ERROR_RESPONSES)
    app.include_router(approvals_api.router, responses=_ERROR_RESPONSES)
    app.include_router(command_blobs.router, responses=_ERROR_RESPONSES)
    app.add_middleware(FastCreate)  # POST /v1/commands without the framework, when it can
    app.add_middleware(BodyLimit)  # outermost of ours: it bounds what FastCreate reads too
    return app
