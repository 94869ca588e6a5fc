"""Root fixtures shared by every suite.

``tests/`` is put on ``sys.path`` by pytest (this conftest lives here and ``tests`` has no
``__init__.py``), so suites import helpers as ``from support.… import …``.

* ``database_url`` — ``None`` (embedded SQLite) or a fresh PostgreSQL database, parametrized:
  each test using it runs on both; the PostgreSQL case is marked ``postgres`` and skipped when no
  server answers on 127.0.0.1:5432.
* ``manager_factory`` — start real ``alien serve`` processes (``ManagerProcess``; keyword
  options such as ``extra_env`` pass through); all are stopped at the end of the test.
* ``manager`` — one started manager on ``database_url``.

Hypothesis explores with a fresh random seed on every local run, where finding a new failing
example is the point. CI sets ``HYPOTHESIS_PROFILE=ci``: the same examples on every run, so a
landing is never refused by an example drawn for the first time that day (new examples are found
locally and then kept as explicit ``@example`` cases).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from alien.redaction import default_redactor
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess

settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    with database_for(request.param) as url:
        yield url


@pytest.fixture
def manager_factory(
    tmp_path: Path, database_url: str | None
) -> Iterator[Callable[..., ManagerProcess]]:
    started: list[ManagerProcess] = []

    def start(name: str = "manager", **options: Any) -> ManagerProcess:
        proc = ManagerProcess(tmp_path / name, database_url=database_url, **options)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def manager(manager_factory: Callable[..., ManagerProcess]) -> ManagerProcess:
    return manager_factory()


@pytest.fixture(autouse=True)
def _fresh_process_redactor() -> Iterator[None]:
    """Secrets a test registers with the process-wide redactor (vault values, tokens) must not
    mask another test's output in the same worker process."""
    yield
    default_redactor().clear()
