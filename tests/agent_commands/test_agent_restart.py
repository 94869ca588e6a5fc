"""The manager restarts in the middle of a run of commands handled by a real agent: none is
lost, none runs twice, each answers its own params.

Commands are created by 16 concurrent submitters with idempotency keys (a create that hits the
restart is retried and still creates one command); each handler takes a little while, so some
are held by the agent when the manager goes away. The agent keeps running them, keeps their
responses until the manager confirms them, and ignores the deliveries the manager sends again
on reconnect.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path

import pytest
from agent_command_helpers import eventually, journal
from agent_deployments import Deployed, assert_clean

from alien.client.errors import ManagerUnreachable
from alien.commands import Command, CommandsClient

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow


def _restart_during_run(deployed: Deployed, tmp_path: Path, total: int) -> None:
    """Create ``total`` commands (16 at a time, each a little slow), restart the manager once a
    third of them exist, then check every one ran exactly once and answered its own ``n``."""
    log = tmp_path / "journal"
    manager = deployed.manager
    created: dict[int, Command] = {}
    run = secrets.token_hex(4)  # idempotency keys of this run only

    async def create(client: CommandsClient, n: int) -> None:
        params = {"n": n, "seconds": 0.05, "journal": str(log)}
        while True:  # a create may hit the restart: retry, the idempotency key makes it once
            try:
                created[n] = await client.submit_async(
                    "sequence", params, idempotency_key=f"restart-{run}-{n}", timeout=120
                )
                return
            except ManagerUnreachable:
                await asyncio.sleep(0.1)

    async def scenario() -> dict[int, Command]:
        async with deployed.client(http_timeout=10) as client:
            numbers = iter(range(total))
            restarted = asyncio.Event()

            async def submitter() -> None:
                for n in numbers:
                    await create(client, n)

            async def restart() -> None:
                while len(created) < total // 3:
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(manager.restart)
                restarted.set()

            await asyncio.gather(restart(), *(submitter() for _ in range(16)))
            assert restarted.is_set()
            ended = await asyncio.gather(
                *(client.wait_async(c.id, timeout=120) for c in created.values())
            )
            return {c.result["n"] if c.result else -1: c for c in ended}

    ended = asyncio.run(scenario())
    assert sorted(ended) == list(range(total))  # none lost, each answered its own n
    assert {c.state for c in ended.values()} == {"succeeded"}
    runs = [line.split() for line in journal(log)]
    assert sorted(int(n) for _, _, _, n in runs) == list(range(total))  # none ran twice
    assert {attempt for _, _, attempt, _ in runs} == {"1"}
    assert_clean(deployed.agent.log_path.read_text())


def test_manager_restart_during_200_commands_loses_and_repeats_none(
    deployed: Deployed, tmp_path: Path
) -> None:
    _restart_during_run(deployed, tmp_path, 200)


def test_an_invoke_waits_through_a_manager_restart(deployed: Deployed, tmp_path: Path) -> None:
    """``alien commands invoke`` holds one request open while the command runs. A stopping
    manager answers it with the command as it is (uvicorn cut it off after its grace period
    with a 500), and the client waits on, through the restart, for the result."""
    log = tmp_path / "journal"
    answer: dict[str, object] = {}
    with deployed.client() as client:

        def invoke() -> None:
            try:
                answer["result"] = client.invoke(
                    "slow", {"seconds": 4, "journal": str(log)}, timeout=120
                )
            except Exception as exc:  # the assertion below shows it
                answer["error"] = exc

        waiting = threading.Thread(target=invoke, daemon=True)
        waiting.start()
        eventually(lambda: any(line.startswith("started ") for line in journal(log)), "a start")
        deployed.manager.restart()
        waiting.join(timeout=60)
    assert answer == {"result": {"attempt": 1, "slept": 4}}, answer
    assert " 500 " not in deployed.manager.log(tail=None)


def test_manager_restart_during_1000_commands_loses_and_repeats_none(
    deployed: Deployed, tmp_path: Path
) -> None:
    _restart_during_run(deployed, tmp_path, 1000)
