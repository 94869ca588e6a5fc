"""Fixtures for debug sessions end to end: a signature-checking moto server, a real manager
process whose own AWS identity (boto3's default chain, from its environment) may assume the
deployment's management role in moto, and a push-model AWS deployment registered on it.

The moto helpers are shared with ``tests/debug`` (the loopback proxy without a tunnel); that
directory is put on ``sys.path`` here so both suites start moto the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "debug"))

from dbg_world import REGION, World, make_world, manager_env
from debug_moto import MotoServer, start_moto

from support.manager import ManagerProcess


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto(REGION)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def debug_manager(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    """One manager (SQLite) shared by this worker's end-to-end tests."""
    manager = ManagerProcess(tmp_path_factory.mktemp("manager"), extra_env=manager_env(moto))
    manager.start()
    yield manager
    manager.stop()


@pytest.fixture
def world(debug_manager: ManagerProcess, moto: MotoServer, tmp_path: Path) -> Iterator[World]:
    """A fresh group with a push-model AWS deployment (allowed: s3, sts) and a debugger key."""
    w = make_world(debug_manager, moto, tmp_path)
    yield w
    w.close()
