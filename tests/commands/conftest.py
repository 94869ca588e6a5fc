"""Fixtures of the remote-commands suite: a real manager (SQLite and PostgreSQL), a deployment
running a release with command-enabled functions, and a test agent on its WebSocket.

Most tests share one manager process per database kind; tests that need other settings (a
short lease) or restart the manager start their own, and tests that must reach the command
center itself use one in this process (``in_process``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from agent_double import KNOWN_COMMANDS, CommandAgent, Deployment, running_deployment
from in_process import InProcessManager

from support.api import ApiClient
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess


def assert_clean_log(proc: ManagerProcess) -> None:
    """Whatever the tests did, the server side must not have hit an unexpected error."""
    log = proc.log(tail=None)
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


@pytest.fixture(scope="session", params=DATABASES)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    with database_for(request.param) as url:
        yield url


@pytest.fixture(scope="session")
def commands_manager(
    database: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    proc = ManagerProcess(tmp_path_factory.mktemp("cmd-manager"), database_url=database).start()
    try:
        yield proc
    finally:
        proc.stop()
    assert_clean_log(proc)


@pytest.fixture(scope="module")
def short_lease_manager(
    database: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    """A manager whose leases last 1 s, to see them run out (one per module and database)."""
    with database_for("postgres" if database else "sqlite") as url:
        proc = ManagerProcess(
            tmp_path_factory.mktemp("short-lease"),
            database_url=url,
            extra_env={"ALIEN_COMMAND_LEASE_SECONDS": "1.0"},
        ).start()
        try:
            yield proc
        finally:
            proc.stop()
    assert_clean_log(proc)


@pytest.fixture
def own_manager(database: str | None, tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    """Start a manager of one's own (same database kind, fresh database) with ``extra_env``."""
    started: list[ManagerProcess] = []
    with ExitStack() as databases:

        def start(**env: str) -> ManagerProcess:
            url = databases.enter_context(database_for("postgres" if database else "sqlite"))
            proc = ManagerProcess(tmp_path / f"m{len(started)}", database_url=url, extra_env=env)
            started.append(proc)
            return proc.start()

        yield start
        for proc in started:
            proc.stop()
    for proc in started:
        assert_clean_log(proc)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessManager]:
    """A manager in this process (SQLite), one per module: its command center is reachable."""
    with InProcessManager(tmp_path_factory.mktemp("in-process")) as manager:
        yield manager


@pytest.fixture
def admin(commands_manager: ManagerProcess) -> Iterator[ApiClient]:
    with commands_manager.client() as client:
        yield client


@pytest.fixture
def deployment(admin: ApiClient) -> Deployment:
    return running_deployment(admin, commands=KNOWN_COMMANDS)


@pytest.fixture
def agent(commands_manager: ManagerProcess, deployment: Deployment) -> Iterator[CommandAgent]:
    with CommandAgent(commands_manager.ws_url, deployment.token) as connected:
        yield connected
