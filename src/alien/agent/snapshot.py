"""What the agent tells about itself: ``status.json`` for ``alien-deploy status``, and the
``detail`` it sends the manager (shown by ``alien deployments describe``).

Both come from the local platform's ``Status`` (functions, their URLs, resources and health) plus
what the link knows. Neither holds a secret: no token, no binding paths, no environment.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from alien.agent.config import AGENT_VERSION
from alien.agent.link import ManagerLink
from alien.agent.state import AgentState
from alien.platforms.local.status import Status
from alien.protocol.agent_channel import COMMANDS_DETAIL_KEY, MAX_DETAIL_BYTES

MAX_TEXT = 1000
MAX_WARNINGS = 20


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[: MAX_TEXT - 1] + "…"


def platform_view(status: Status, running: str | None) -> dict[str, Any]:
    """Functions, URLs, resources and health, bounded in size."""
    view = status.to_dict()
    for function in view["functions"]:
        function["last_error"] = _short(function.get("last_error"))
    view["warnings"] = [_short(w) for w in view["warnings"][:MAX_WARNINGS]]
    view["urls"] = status.urls
    view["release"] = running
    return view


def detail(
    status: Status,
    running: str | None,
    link: ManagerLink,
    *,
    commands: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The ``detail`` of a status report (replaces the manager's stored detail).

    ``commands``: the command names per function (``COMMANDS_DETAIL_KEY``), kept even when the
    rest is cut down to fit: the manager refuses unknown commands with it."""
    out: dict[str, Any] = {
        "platform": "local",
        "agent_version": AGENT_VERSION,
        "transport": link.transport,
        **platform_view(status, running),
    }
    if commands is not None:
        out[COMMANDS_DETAIL_KEY] = commands
    if len(json.dumps(out, default=str)) > MAX_DETAIL_BYTES:
        out["functions"] = [
            {k: f[k] for k in ("id", "state", "release", "url")} for f in out["functions"]
        ]
        out["resources"], out["warnings"] = [], []
    return out


def snapshot(
    state: AgentState, status: Status, running: str | None, link: ManagerLink, started_at: datetime
) -> dict[str, Any]:
    """The content of ``status.json``."""
    mirror = link.mirror
    return {
        "deployment_id": state.deployment_id,
        "name": state.deployment_name,
        "group": state.group,
        "manager_url": state.manager_url,
        "area": state.area,
        "agent": {
            "pid": os.getpid(),
            "version": AGENT_VERSION,
            "started_at": started_at.isoformat(),
            "connected": link.connected,
            "transport": link.transport,
            "problem": link.last_problem,
        },
        "state": mirror.state.value if mirror else None,
        "desired_release": mirror.desired_release if mirror else None,
        "error": mirror.error if mirror else None,
        "last_good_release": state.current_release,
        **platform_view(status, running),
        "updated_at": datetime.now(UTC).isoformat(),
    }
