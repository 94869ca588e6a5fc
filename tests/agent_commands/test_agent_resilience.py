"""Leases through a real agent when things die: the agent, the manager, the connection.

* a handler running longer than its lease keeps it (the agent acks and renews);
* the agent is SIGKILLed mid-handler: the lease runs out, the restarted agent runs the command
  again as attempt 2, and it ends exactly once, with attempt 2's answer;
* the manager dies mid-handler and stays down past the lease: the agent keeps the finished
  handler's response and sends it again on reconnect, the manager refuses it (stale lease) and
  the command runs again — the stale answer is never applied;
* an agent without a WebSocket takes commands over the long-poll lease, and learns of a cancel
  from the answer to its open lease request.

(The manager restarting in the middle of a run of commands: ``test_agent_restart``.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_command_helpers import eventually, journal, wait_journal
from agent_deployments import Deployed, assert_clean, deploy
from agent_support import PinnedManager

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow

LEASE_SECONDS = 1.0


@pytest.fixture(scope="module")
def short_lease(module_root: Path) -> Iterator[PinnedManager]:
    """A manager whose leases last 1 s (renewed every third of that by the agent)."""
    proc = PinnedManager(
        module_root / "manager", extra_env={"ALIEN_COMMAND_LEASE_SECONDS": str(LEASE_SECONDS)}
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()  # no graceful stop to wait for: the tests killed it once already
    assert_clean(proc.log(tail=None))


@pytest.fixture(scope="module")
def running(short_lease: PinnedManager, module_root: Path) -> Iterator[Deployed]:
    deployed = deploy(short_lease, module_root)
    try:
        yield deployed
    finally:
        deployed.agent.stop()


@pytest.fixture(scope="module")
def polling(short_lease: PinnedManager, module_root: Path) -> Iterator[Deployed]:
    """An agent that only long-polls (as behind a proxy refusing WebSockets)."""
    deployed = deploy(short_lease, module_root, group="edge", name="behind-proxy", transport="poll")
    try:
        yield deployed
    finally:
        deployed.agent.stop()


def agent_log(deployed: Deployed) -> str:
    return deployed.agent.log_path.read_text()


def test_a_handler_longer_than_its_lease_keeps_it(running: Deployed, tmp_path: Path) -> None:
    log = tmp_path / "journal"
    with running.client() as client:
        ended = client.run("slow", {"seconds": 2.5 * LEASE_SECONDS, "journal": str(log)})
    assert ended.state == "succeeded" and ended.attempt == 1
    assert client.result(ended) == {"attempt": 1, "slept": 2.5 * LEASE_SECONDS}
    assert journal(log) == [f"started {ended.id} 1", f"finished {ended.id} 1"]


def test_agent_killed_mid_handler_the_command_runs_again_and_ends_once(
    running: Deployed, tmp_path: Path
) -> None:
    log = tmp_path / "journal"
    with running.client() as client:
        command = client.submit("slow", {"seconds": 1.0, "journal": str(log)}, timeout=60)
        wait_journal(log, f"started {command.id} 1")
        running.agent.kill()
        # The lease runs out with nobody renewing it: the command waits for its next attempt.
        # (An agent back before that would be sent the same delivery again and run it.)
        eventually(lambda: client.get(command.id).attempt == 2, "the lease to run out")
        running.agent.start("run")  # what a supervisor does: the same deployment comes back
        ended = client.wait(command.id, timeout=30)
    assert ended.state == "succeeded" and ended.attempt == 2
    assert client.result(ended) == {"attempt": 2, "slept": 1.0}
    lines = journal(log)
    assert lines.count(f"finished {command.id} 2") == 1
    assert not any(line.endswith(f"{command.id} 3") for line in lines)  # no third attempt
    assert_clean(agent_log(running))


def test_a_stale_response_is_refused_and_the_command_runs_again(
    running: Deployed, tmp_path: Path
) -> None:
    log = tmp_path / "journal"
    manager = running.manager
    with running.client() as client:
        command = client.submit("slow", {"seconds": 0.5, "journal": str(log)}, timeout=60)
        wait_journal(log, f"started {command.id} 1")
        manager.kill()
        wait_journal(log, f"finished {command.id} 1")  # answered while no manager runs
        assert command.lease_expires_at is not None
        # The scenario itself: the lease must run out while the manager is down.
        time.sleep(max(0.0, (command.lease_expires_at - datetime.now(UTC)).total_seconds() + 0.2))
        manager.start()
        ended = client.wait(command.id, timeout=30)
    assert ended.state == "succeeded" and ended.attempt == 2
    assert client.result(ended) == {"attempt": 2, "slept": 0.5}
    assert journal(log).count(f"finished {command.id} 1") == 1
    refused = f"the manager refused the response to {command.id}"
    text = agent_log(running)
    assert refused in text and "STALE_LEASE" in text.split(refused, 1)[1].splitlines()[0]


def test_commands_over_the_long_poll_lease(polling: Deployed, tmp_path: Path) -> None:
    assert polling.admin().get_deployment(polling.deployment_id).status_detail["transport"] == (
        "poll"
    )
    with polling.client() as client:
        assert client.invoke("echo", {"via": "poll"})["params"] == {"via": "poll"}
        log = tmp_path / "journal"
        command = client.submit("wait-cancel", {"journal": str(log)})
        wait_journal(log, f"started {command.id} 1")
        assert client.cancel(command.id).state == "cancelled"
    # No WebSocket to push the cancel on: the agent's open lease request is answered with it.
    wait_journal(log, "cancelled=True COMMAND_CANCELLED", timeout=LEASE_SECONDS * 3)
