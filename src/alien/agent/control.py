"""``alien-deploy status`` and ``down``: look at, and remove, a deployment from outside its agent.

``status`` never talks to the agent process: it reads the state dir (``agent.json``) and, when the
agent holds its lock, the ``status.json`` the agent keeps fresh. ``down`` stops a running agent
(SIGTERM, so it stops its functions gracefully), tears the area down with everything in it, tells
the manager (``delete_requested`` then ``deleted``, with the deployment's own token; the manager
then revokes that token) and removes the agent's files from the state dir. If the manager cannot
be told, the local teardown still happens (it is what the customer asked for), the result says
so, and the state dir keeps the deployment's token and state, so that ``down`` run again tells
the manager: forgetting them would leave the manager listing a deployment nobody can remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

from alien.agent.config import AGENT_VERSION
from alien.agent.state import StateDir
from alien.client.aio import AsyncManagerClient
from alien.client.config import ClientConfig
from alien.errors import AlienError, Conflict
from alien.platforms.local.area import Area
from alien.platforms.local.platform import LocalPlatform
from alien.protocol.agent_channel import AGENT_INSTANCE_HEADER, Hello, StatusReport, Welcome
from alien.protocol.deployment import Deleted, DeleteRequested, DeploymentState

_LIVE_KEYS = (
    "state",
    "desired_release",
    "error",
    "release",
    "urls",
    "functions",
    "resources",
    "healthy",
    "warnings",
    "updated_at",
)


def local_status(state_dir: StateDir) -> dict[str, Any]:
    """What runs here: from the state dir, plus the running agent's own report if it runs."""
    state = state_dir.load()
    pid = state_dir.running_pid()
    out: dict[str, Any] = {
        "deployment_id": state.deployment_id,
        "name": state.deployment_name,
        "group": state.group,
        "manager_url": state.manager_url,
        "state_dir": str(state_dir.root),
        "area": state.area,
        "agent_running": pid is not None,
        "pid": pid,
        "deleted": state.deleted,
        "last_good_release": state.current_release,
        "connected": False,
        "transport": None,
        "release": None,
        "state": None,
        "desired_release": None,
        "error": None,
        "urls": {},
        "functions": [],
        "resources": [],
        "healthy": None,
        "warnings": [],
        "updated_at": None,
    }
    snap = state_dir.read_status() if pid is not None else None
    if snap and snap.get("deployment_id") == state.deployment_id and not snap.get("stopped"):
        out.update({key: snap.get(key, out[key]) for key in _LIVE_KEYS})
        agent = snap.get("agent") or {}
        out["connected"] = bool(agent.get("connected"))
        out["transport"] = agent.get("transport")
        out["problem"] = agent.get("problem")
    return out


@dataclass(frozen=True)
class DownResult:
    deployment: str
    told_manager: bool
    warning: str | None = None


async def stop_agent(state_dir: StateDir, timeout: float) -> None:
    """SIGTERM the agent running on ``state_dir`` (if any) and wait until it has let go."""
    pid = state_dir.running_pid()
    if pid is None:
        return
    if pid > 0:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while state_dir.running_pid() is not None:
        if time.monotonic() > deadline:
            raise Conflict(
                f"the agent (pid {pid}) did not stop within {timeout:g}s", field="state_dir"
            )
        await asyncio.sleep(0.1)


async def down(state_dir: StateDir, *, stop_timeout: float = 60.0) -> DownResult:
    """Tear the deployment on this machine down and forget it (see the module docstring)."""
    state = state_dir.load()
    token = state_dir.read_token()
    await stop_agent(state_dir, stop_timeout)
    state_dir.lock()
    warning = None
    try:
        config = ClientConfig(base_url=state.manager_url, token=token)
        instance = state_dir.last_instance()  # speak as the agent that ran here
        extra = {AGENT_INSTANCE_HEADER: instance} if instance else None
        async with AsyncManagerClient(config, extra_headers=extra) as client:
            try:
                deleted_already = await _request_delete(client)
            except AlienError as exc:
                warning, deleted_already = f"the manager was not told: {exc.message}", True
            await LocalPlatform(Area(state.area)).teardown()
            if not deleted_already:
                try:
                    await client.agent_message(
                        StatusReport(event=Deleted()).model_dump(mode="json")
                    )
                except AlienError as exc:
                    warning = f"the manager was not told the teardown finished: {exc.message}"
    finally:
        state_dir.unlock()
    if warning is None:
        _forget(state_dir)
    return DownResult(deployment=state.ref, told_manager=warning is None, warning=warning)


async def _request_delete(client: AsyncManagerClient) -> bool:
    """Report ``delete_requested`` unless under way; ``True`` if the manager has it deleted."""
    replies = await client.agent_message(Hello(agent_version=AGENT_VERSION).model_dump(mode="json"))
    welcome = next(m for m in replies.messages if isinstance(m, Welcome))
    state = welcome.status.state
    if state is DeploymentState.DELETED:
        return True
    if state is not DeploymentState.DELETING:
        await client.agent_message(StatusReport(event=DeleteRequested()).model_dump(mode="json"))
    return False


def _forget(state_dir: StateDir) -> None:
    """Remove the agent's own files; never anything else a user may keep in that directory."""
    for path in (
        state_dir.state_file,
        state_dir.token_file,
        state_dir.status_file,
        state_dir.lock_file,
        state_dir.instance_file,
    ):
        path.unlink(missing_ok=True)
    for path in (state_dir.packages_dir, state_dir.downloads_dir, state_dir.default_area):
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: the user keeps other things there
        state_dir.root.rmdir()
