"""Remote commands end to end through a real agent: the CLI and the Python client invoke, the
manager hands the command to the agent's WebSocket, the agent runs it in the function process
of the pages example and the result comes back. Failures, unknown names, deadlines and cancels
end the way a user expects, and the handler hears about the last two."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from agent_command_app import ALL_COMMANDS
from agent_command_helpers import alien_cli, journal, wait_journal
from agent_deployments import Deployed

from alien.commands import Command, CommandFailed
from alien.errors import AlienError


def cli(deployed: Deployed, *args: str) -> subprocess.CompletedProcess[str]:
    return alien_cli(deployed.manager.url, deployed.manager.admin_key, *args)


def test_cli_invokes_a_pages_command_on_the_deployment(deployed: Deployed) -> None:
    api = deployed.agent.urls["api"]
    assert (
        httpx.put(f"{api}/pages/home", content=b"hello remote world", timeout=10).status_code == 200
    )
    assert httpx.get(f"{api}/pages/home", timeout=10).text == "hello remote world"

    done = cli(
        deployed,
        "commands", "invoke", "--deployment", "acme/prod", "--command", "page-stats",
        "--params", '{"name": "home"}',
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["views"] == 1


def test_python_client_invoke_and_invoke_async(deployed: Deployed) -> None:
    with deployed.client() as client:
        assert client.invoke("echo", {"n": 1})["params"] == {"n": 1}
        report = client.invoke("generate-report", {"limit": 10})
        assert {"pages", "total_bytes"} <= set(report)

        async def both() -> list[object]:
            return await asyncio.gather(
                client.invoke_async("echo", {"n": 2}), client.invoke_async("sequence", {"n": 3})
            )

        echoed, sequenced = asyncio.run(both())
    assert echoed["params"] == {"n": 2} and echoed["attempt"] == 1  # type: ignore[index]
    assert sequenced == {"n": 3}


def test_a_handler_that_raises_fails_with_one_line_and_exit_1(deployed: Deployed) -> None:
    done = cli(
        deployed,
        "commands", "invoke", "--deployment", "acme/prod", "--command", "fail",
        "--params", '{"reason": "disk on fire"}',
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: HANDLER_ERROR: ") and "disk on fire" in done.stderr

    with deployed.client() as client, pytest.raises(CommandFailed) as failed:
        client.invoke("fail")
    assert failed.value.code == "HANDLER_ERROR"
    assert failed.value.command.error is not None
    assert failed.value.command.error.details["type"] == "builtins.ValueError"


def test_an_unknown_command_is_refused_at_once_listing_the_known_ones(deployed: Deployed) -> None:
    started = time.monotonic()
    done = cli(
        deployed, "commands", "invoke", "--deployment", "acme/prod", "--command", "page-stat"
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: UNKNOWN_COMMAND: "), done.stderr
    assert "known commands: " in done.stderr and "page-stats" in done.stderr, done.stderr

    with deployed.client() as client:
        with pytest.raises(AlienError) as refused:
            client.invoke("no-such-command")
        elapsed = time.monotonic() - started
        assert refused.value.code == "UNKNOWN_COMMAND"
        assert refused.value.details["known"] == ALL_COMMANDS
        listed = client.list(deployment=deployed.ref, command="no-such-command")
    assert listed == []  # refused before anything was created
    assert elapsed < 10  # two CLI/client round trips, no waiting for the agent


def test_a_deadline_expires_the_command_and_stops_the_handler(
    deployed: Deployed, tmp_path: Path
) -> None:
    log = tmp_path / "journal"
    with deployed.client() as client, pytest.raises(CommandFailed) as expired:
        client.invoke("slow", {"seconds": 60, "journal": str(log)}, timeout=1.5)
    assert expired.value.code == "COMMAND_EXPIRED"
    assert expired.value.command.state == "expired"
    command_id = expired.value.command.id
    lines = wait_journal(log, f"stopped {command_id} 1 HANDLER_TIMEOUT")
    assert lines[0] == f"started {command_id} 1"


def test_cancel_ends_the_command_and_the_handler_observes_it(
    deployed: Deployed, tmp_path: Path
) -> None:
    log = tmp_path / "journal"
    with deployed.client() as client:
        command = client.submit("wait-cancel", {"journal": str(log)})
        wait_journal(log, f"started {command.id} 1")
        cancelled = client.cancel(command.id, reason="wrong customer")
        assert cancelled.state == "cancelled"
        wait_journal(log, "cancelled=True COMMAND_CANCELLED")
        assert len(journal(log)) == 2
        ended = client.wait(command.id, timeout=5)
    assert ended.state == "cancelled" and ended.error is not None
    assert ended.error.code == "COMMAND_CANCELLED" and ended.error.message == "wrong customer"


def test_commands_run_concurrently_up_to_the_agents_limit(
    deployed: Deployed, tmp_path: Path
) -> None:
    """80 one-second commands at once: 64 run together (the agent's limit), the rest queue."""
    log = tmp_path / "journal"

    async def burst() -> list[Command]:
        async with deployed.client() as client:
            return await asyncio.gather(
                *(
                    client.run_async("slow", {"seconds": 1.0, "journal": str(log)})
                    for _ in range(80)
                )
            )

    ended = asyncio.run(burst())
    assert {c.state for c in ended} == {"succeeded"}
    running = most = 0
    for line in journal(log):
        running += 1 if line.startswith("started ") else -1
        most = max(most, running)
    assert most == 64
