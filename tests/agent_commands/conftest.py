"""Fixtures of the agent-commands suite: a real manager, a real ``alien-deploy`` agent, and the
pages example (plus test commands) deployed as ``acme/prod``, all separate processes on loopback.

``deployed`` (``acme/prod``) is shared by the whole suite (deploying takes seconds), and so is
its manager; ``fleet`` adds ``acme/east`` and ``acme/west`` for fan-out. Tests that need a
manager with other settings (a short lease) build their own with :func:`deploy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_deployments import (  # (puts tests/agent on sys.path)
    Deployed,
    assert_clean,
    deploy,
    deploy_many,
)
from agent_support import PinnedManager


@pytest.fixture(scope="module")
def module_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-commands")


@pytest.fixture(scope="session")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PinnedManager]:
    """The shared manager (default settings; tests may restart it: it keeps its port)."""
    proc = PinnedManager(tmp_path_factory.mktemp("agent-commands-manager"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
    assert_clean(proc.log(tail=None))


@pytest.fixture(scope="session")
def deployed(
    manager: PinnedManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """``acme/prod`` running the command app under a real agent."""
    running = deploy(manager, tmp_path_factory.mktemp("acme-prod"))
    try:
        yield running
    finally:
        running.agent.stop()
    assert_clean(running.agent.log())


@pytest.fixture(scope="session")
def fleet(
    deployed: Deployed, manager: PinnedManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Deployed]]:
    """Every deployment of group ``acme``: ``prod`` plus ``east`` and ``west``."""
    more = deploy_many(manager, tmp_path_factory.mktemp("acme-fleet"), "acme", ["east", "west"])
    try:
        yield [deployed, *more]
    finally:
        for member in more:
            member.agent.terminate()
        for member in more:
            member.agent.stop()
