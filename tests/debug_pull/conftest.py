"""Fixtures for pull-model debugging end to end (all real processes, per xdist worker):

* ``moto`` — a moto server with signature checks on;
* ``targets`` — an allowlisted HTTP and HTTPS service and a third HTTP service that is *not* on
  the allowlist (reachable, so a refusal proves the allowlist, not an unreachable port);
* ``pull_manager`` — a manager without any AWS identity of its own;
* ``deployment`` — one deployment run by a real agent that holds the AWS identity and the
  debug configuration;
* ``world`` — a debugger key and a private runtime dir for one test;
* ``azurite`` — Azurite's blob service (it checks Shared Key signatures), for the ``az`` tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "debug"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "debug_sessions"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent"))

from dbg_world import REGION, World
from debug_moto import MotoServer, start_moto
from pull_world import PullDeployment, debug_config, make_world, pull_manager_env, start_agent
from targets import Targets, start_target

from support.azurite import Azurite, start_azurite
from support.manager import ManagerProcess


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto(REGION)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    found = Targets(
        http=start_target(),
        https=start_target(tmp_path_factory.mktemp("tls")),
        outside=start_target(),
    )
    yield found
    for target in (found.http, found.https, found.outside):
        target.stop()


@pytest.fixture(scope="session")
def pull_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    manager = ManagerProcess(tmp_path_factory.mktemp("manager"), extra_env=pull_manager_env())
    manager.start()
    yield manager
    manager.stop()


@pytest.fixture(scope="session")
def deployment(
    pull_manager: ManagerProcess,
    moto: MotoServer,
    targets: Targets,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PullDeployment]:
    config = debug_config(moto, [targets.http, targets.https])
    found = start_agent(pull_manager, moto, tmp_path_factory.mktemp("pull"), config)
    yield found
    found.agent.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture
def world(
    pull_manager: ManagerProcess, deployment: PullDeployment, tmp_path: Path
) -> Iterator[World]:
    w = make_world(pull_manager, deployment, tmp_path)
    yield w
    w.close()
