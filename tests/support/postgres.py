"""Fresh PostgreSQL databases for tests, one per use, dropped afterwards.

The server is the one on 127.0.0.1:5432 with trust auth and a ``test`` database (the CI machine's);
``ALIEN_TEST_PG_ADMIN_URL`` (a libpq URL to an existing database) overrides where to connect.
Database names carry the xdist worker id and random hex so parallel runs never collide.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


@functools.cache
def admin_url() -> str | None:
    """A working libpq URL with CREATE DATABASE rights, or ``None`` when no server answers."""
    configured = os.environ.get("ALIEN_TEST_PG_ADMIN_URL")
    for url in (configured,) if configured else _CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error:
            continue
    return None


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_database(prefix: str = "alien") -> Iterator[str]:
    """Create an empty database; yield its SQLAlchemy URL (``postgresql+psycopg://…``)."""
    admin = admin_url()
    if admin is None:
        raise RuntimeError("no PostgreSQL server on 127.0.0.1:5432")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{secrets.token_hex(6)}".lower()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin, name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
