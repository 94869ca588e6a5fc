"""A deployment of the agent-commands test app under a real ``alien-deploy`` agent.

:func:`deploy` onboards an agent (its own process) into ``group``, releases the pages example
with the test commands to it and returns once it runs and the manager knows its command names.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))  # agent_support

from agent_command_app import ALL_COMMANDS, write_command_app
from agent_support import AgentProcess, PinnedManager, admin_client

from alien.client import ManagerClient
from alien.client.publish import publish
from alien.commands import CommandsClient

REPORT_TIMEOUT = 20.0


@dataclass
class Deployed:
    """A deployment running the command app under a real agent."""

    manager: PinnedManager
    agent: AgentProcess
    deployment_id: str
    ref: str
    release: str

    def client(self, **options: float) -> CommandsClient:
        return CommandsClient(
            deployment=self.ref, token=self.manager.admin_key, manager=self.manager.url, **options
        )

    def admin(self) -> ManagerClient:
        return admin_client(self.manager)


def wait_commands_reported(admin: ManagerClient, deployment_id: str) -> dict[str, list[str]]:
    """Poll (with a deadline) until the agent reported the app's command names to the manager."""
    deadline = time.monotonic() + REPORT_TIMEOUT
    while True:
        reported = admin.get_deployment(deployment_id).status_detail.get("commands")
        if reported == {"api": ALL_COMMANDS}:
            return reported
        assert time.monotonic() < deadline, f"the agent reported {reported!r}"
        time.sleep(0.05)


def deploy_many(
    manager: PinnedManager, root: Path, group: str, names: list[str], **agent: Any
) -> list[Deployed]:
    """Onboard one agent per name into ``group`` (created if new), release the command app to
    them, and wait until each runs it and its command names reached the manager."""
    with admin_client(manager) as admin:
        if group not in {g.name for g in admin.list_groups()}:
            admin.create_group(group)
        token = admin.create_group_token(group).token
        processes = [
            AgentProcess(root / f"agent-{name}", manager.url, token=token, name=name, **agent)
            for name in names
        ]
        for process in processes:  # all start together; each waits for its deployment line
            process.start()
        ids = [p.deployment_id for p in processes]
        app = write_command_app(root / f"app-{group}-{'-'.join(names)}")
        release = publish(admin, app, {"type": "deployments", "deployments": ids}).release
        for process in processes:
            process.wait_running(release.id)
            assert process.deployment_id is not None
            wait_commands_reported(admin, process.deployment_id)
    return [
        Deployed(manager, p, str(p.deployment_id), f"{group}/{name}", release.id)
        for p, name in zip(processes, names, strict=True)
    ]


def deploy(
    manager: PinnedManager, root: Path, *, group: str = "acme", name: str = "prod", **agent: Any
) -> Deployed:
    """:func:`deploy_many` for one deployment."""
    (deployed,) = deploy_many(manager, root, group, [name], **agent)
    return deployed


KNOWN_SHUTDOWN_NOISE = "timeout graceful shutdown exceeded"
"""uvicorn cancelling long-polls still held when the manager stops (a manager-side shutdown
issue: its long-poll routes do not end when their client goes away); not an agent failure."""


def assert_clean(log: str) -> None:
    """Whatever a test did, no process may have hit an unexpected error."""
    chunks = log.split("Traceback (most recent call last):")
    unexpected = [c for c in chunks[1:] if KNOWN_SHUTDOWN_NOISE not in c]
    assert not unexpected, log[-4000:]
