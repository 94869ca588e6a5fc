"""Which databases the manager tests run on, and how to get one for a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from support.postgres import admin_url, fresh_database

#: Parametrize a fixture with these to run on SQLite and (marked ``postgres``) PostgreSQL.
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def database_for(kind: str) -> Iterator[str | None]:
    """``None`` for SQLite (the manager's default), else a fresh PostgreSQL database URL.

    Skips the test when PostgreSQL is wanted but no server answers on 127.0.0.1:5432.
    """
    if kind == "sqlite":
        yield None
        return
    if admin_url() is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    with fresh_database() as url:
        yield url
