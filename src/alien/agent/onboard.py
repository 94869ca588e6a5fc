"""``alien-deploy up``'s first step: onboard with the group token, or resume what is on disk.

The group token (``ax_dg_…``) is exchanged once for a deployment and its own token
(``ax_dep_…``), which is stored 0600 in the state dir and used for everything after. The group
token itself is never stored: a restarted agent resumes the same deployment from the state dir.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass

from alien.agent.config import AGENT_VERSION
from alien.agent.state import AgentState, StateDir
from alien.client.aio import AsyncManagerClient
from alien.client.config import ClientConfig, check_manager_url
from alien.errors import ValidationError

log = logging.getLogger("alien.agent")

SUPPORTED_PLATFORMS = ("local",)
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def default_name() -> str:
    """This machine's host name as a deployment name (a DNS label), or ``local``."""
    label = _NOT_LABEL.sub("-", socket.gethostname().split(".")[0].lower()).strip("-")[:63]
    return label.strip("-") or "local"


def check_platform(platform: str) -> str:
    if platform not in SUPPORTED_PLATFORMS:
        raise ValidationError(
            f"the agent runs deployments on {', '.join(SUPPORTED_PLATFORMS)} only, "
            f"not {platform!r}",
            field="platform",
        )
    return platform


@dataclass(frozen=True)
class UpRequest:
    """What ``alien-deploy up`` was given (all optional once the state dir is onboarded)."""

    token: str | None = None
    name: str | None = None
    platform: str = "local"
    manager: str | None = None


_TOKEN_KINDS = {
    "ax_key_": "an API key (the vendor's)",
    "ax_dep_": "a deployment's own token",
    "ax_dbg_": "a debug session's token",
}


def check_group_token(token: str | None, missing: str) -> str:
    """The group token onboarding needs, or a one-line refusal saying what to give: the
    environment variable first (``--token`` stays visible in ``ps`` for the agent's life), and
    which kind of token was given instead of one."""
    if not token:
        raise ValidationError(
            f"{missing}: set ALIEN_GROUP_TOKEN=ax_dg_… (the group token the vendor gave you)",
            field="token",
        )
    if not token.startswith("ax_dg_"):
        given = next(
            (kind for prefix, kind in _TOKEN_KINDS.items() if token.startswith(prefix)),
            "not an alien token",
        )
        raise ValidationError(
            f"onboarding takes the group token (ax_dg_…) the vendor gave you; this is {given}",
            field="token",
        )
    return token


async def onboard_or_resume(state_dir: StateDir, request: UpRequest) -> tuple[AgentState, bool]:
    """The deployment to run and whether it was onboarded just now.

    Call with the state dir's lock held, so two ``up`` on one directory cannot both onboard.
    """
    check_platform(request.platform)
    if state_dir.onboarded:
        return _resume(state_dir, request), False
    check_group_token(request.token, f"{state_dir.root} holds no deployment yet")
    if not request.manager:
        raise ValidationError("pass --manager URL (or set ALIEN_MANAGER_URL)", field="manager")
    manager = check_manager_url(request.manager)
    name = request.name or default_name()
    config = ClientConfig(base_url=manager, token=request.token)
    async with AsyncManagerClient(config) as client:
        onboarded = await client.onboard(
            name,
            request.platform,
            metadata={"hostname": socket.gethostname(), "agent_version": AGENT_VERSION},
        )
    dep = onboarded.deployment
    state = AgentState(
        manager_url=manager,
        deployment_id=dep.id,
        deployment_name=dep.name,
        group=dep.group,
        platform=request.platform,
        area=str(state_dir.default_area),
    )
    # The token first: a state file without its token would be a deployment nobody can resume.
    state_dir.write_token(onboarded.token)
    state_dir.save(state)
    return state, True


def _resume(state_dir: StateDir, request: UpRequest) -> AgentState:
    state = state_dir.load()
    if request.name and request.name != state.deployment_name:
        raise ValidationError(
            f"{state_dir.root} belongs to {state.ref}, not {request.name!r}: use another "
            "--state-dir for another deployment",
            field="name",
        )
    if request.platform != state.platform:
        raise ValidationError(
            f"{state.ref} runs on {state.platform}, not {request.platform}", field="platform"
        )
    if request.token:
        log.info("already onboarded as %s; the group token is not needed again", state.ref)
    if request.manager:
        manager = check_manager_url(request.manager)
        if manager != state.manager_url:
            log.info("the manager is now at %s (was %s)", manager, state.manager_url)
            state.manager_url = manager
            state_dir.save(state)
    return state
