"""Fixtures of the manager suite.

Most API tests share one real manager process per test session (per xdist worker) and database kind
(``shared_manager``): starting a process costs about a second, requests a few milliseconds.
Tests stay independent by naming everything they create uniquely
(``support.names.unique``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alien.manager import migrate
from alien.manager.db import Database
from support.api import ApiClient
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess


@pytest.fixture(scope="session", params=DATABASES)
def shared_manager(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    with database_for(request.param) as url:
        proc = ManagerProcess(tmp_path_factory.mktemp("manager"), database_url=url).start()
        try:
            yield proc
        finally:
            proc.stop()
        # Whatever the tests did, the server side must not have hit an unexpected error.
        log = proc.log(tail=None)
        assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of its own (no manager process), per database kind."""
    with database_for(request.param) as url:
        database = Database(url or f"sqlite:///{tmp_path / 'm.db'}")
        migrate.upgrade(database.engine)
        try:
            yield database
        finally:
            database.dispose()


@pytest.fixture
def admin(shared_manager: ManagerProcess) -> Iterator[ApiClient]:
    with shared_manager.client() as client:
        yield client
