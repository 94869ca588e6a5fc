"""Fixtures of the access-governance suite (roles, group scopes, redaction, the API contract).

The suites this one builds on keep their helpers beside their tests; their directories are put
on ``sys.path`` so the same code makes the same worlds here: the signature-checking moto server
(``tests/debug``), push-model AWS registration and the manager's AWS identity
(``tests/debug_sessions``), deployments running a command-enabled release (``tests/commands``),
real ``alien-deploy`` agent processes (``tests/agent``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _suite in ("agent", "debug", "debug_sessions", "commands"):
    if str(_TESTS / _suite) not in sys.path:
        sys.path.insert(0, str(_TESTS / _suite))

from dbg_world import REGION, World, make_world, manager_env  # noqa: E402
from debug_moto import MotoServer, start_moto  # noqa: E402

from support.manager import ManagerProcess  # noqa: E402


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A signature-checking moto server the manager's AWS identity may assume roles on."""
    server = start_moto(REGION)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def push_manager(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    """A manager whose own AWS identity is moto's (push-model debugging), one per test module."""
    proc = ManagerProcess(tmp_path_factory.mktemp("push-manager"), extra_env=manager_env(moto))
    yield proc.start()
    proc.stop()


@pytest.fixture
def world(push_manager: ManagerProcess, moto: MotoServer, tmp_path: Path) -> Iterator[World]:
    """A push-model AWS deployment on ``push_manager``, with an admin client and debug runner."""
    w = make_world(push_manager, moto, tmp_path)
    yield w
    w.close()


def _assert_clean_log(proc: ManagerProcess) -> None:
    log = proc.log(tail=None)
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


@pytest.fixture(scope="session")
def assert_clean_log() -> Callable[[ManagerProcess], None]:
    """Whatever the tests did, the server side must not have hit an unexpected error."""
    return _assert_clean_log
