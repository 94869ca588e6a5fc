"""``POST /v1/agent/commands/lease``: the agent's long-poll for commands when it has no WebSocket.

Leases up to ``max`` pending commands of the caller's deployment at once (pull model: ``pending``
→ ``leased`` under a fresh lease each), or waits until one is created, or until ``wait`` seconds
passed (then ``{"messages": []}``). The body (optional) lists the leases the agent holds
(:class:`AgentLeaseRequest`); each one that is no longer its command's current lease (cancelled,
expired, run out, re-leased) is answered at once by a ``command_cancel``. The answer's messages
are those cancels, then ``command`` deliveries, the same as over the WebSocket;
acknowledgements, renewals and responses go to ``POST /v1/agent/status`` (or the envelope's
``response_url``). The poll marks the agent connected while it is held.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from alien.errors import ValidationError
from alien.manager.agents import POLL
from alien.manager.api.agent import agent_channel
from alien.manager.api.deps import Core, require
from alien.manager.auth import Action, Principal
from alien.manager.commands.center import center_of
from alien.protocol.agent_channel import AgentLeaseRequest, AgentPoll

router = APIRouter(tags=["agent"])
Agent = Annotated[Principal, Depends(require(Action.AGENT))]


@router.post("/v1/agent/commands/lease", response_model=AgentPoll)
async def lease_commands(
    request: Request,
    core: Core,
    caller: Agent,
    wait: Annotated[float, Query(ge=0, description="seconds to hold the request open")] = 25.0,
    max: Annotated[
        int,
        Query(ge=0, le=100, description="most commands to lease (0: only cancels of held leases)"),
    ] = 16,
    body: Annotated[AgentLeaseRequest | None, Body()] = None,
) -> AgentPoll:
    if wait > core.settings.max_wait:
        raise ValidationError(
            f"wait may be at most {core.settings.max_wait:g} seconds", field="wait"
        )
    assert caller.deployment_id is not None
    base_url = str(request.base_url).rstrip("/")
    async with agent_channel(request, caller, POLL):
        offers = await center_of(request).lease_pending(
            caller.deployment_id,
            base_url,
            limit=max,
            wait=wait,
            held=body.held if body is not None else (),
        )
    return AgentPoll(messages=tuple(offers))
