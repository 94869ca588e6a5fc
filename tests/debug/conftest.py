"""Fixtures for the AWS debugging tests: a signature-checking moto server (one per xdist worker)
and a debug session whose loopback proxy re-signs for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from debug_moto import MotoServer, start_moto
from debug_session import REGION, DebugSession, start_session


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto(REGION)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def session(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebugSession]:
    debug_session = start_session(moto, tmp_path_factory.mktemp("sessions"))
    yield debug_session
    debug_session.stop()
