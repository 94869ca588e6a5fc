"""Fixtures of the agent suite: managers, agents and clients, all real processes on loopback.

* ``pinned_manager`` — a manager on ``database_url`` (SQLite and PostgreSQL) that restarts on the
  same port; ``sqlite_manager`` — one on SQLite for tests where the database does not matter.
* ``admin`` — a ``ManagerClient`` with the admin key of ``pinned_manager``.
* ``agent_factory`` — ``AgentProcess`` objects, all stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_support import AgentProcess, PinnedManager

from support.manager import ManagerProcess


@pytest.fixture
def pinned_manager(tmp_path: Path, database_url: str | None) -> Iterator[PinnedManager]:
    proc = PinnedManager(tmp_path / "manager", database_url=database_url)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def sqlite_manager(tmp_path: Path) -> Iterator[PinnedManager]:
    proc = PinnedManager(tmp_path / "manager")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(
        manager: ManagerProcess, name: str, token: str | None = None, **kw: object
    ) -> AgentProcess:
        agent = AgentProcess(tmp_path / f"agent-{name}", manager.url, token=token, name=name, **kw)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.terminate()
    for agent in started:
        agent.stop()
