"""Alembic environment for the manager's schema.

Run programmatically by :func:`alien.manager.migrate.upgrade` with an open connection in
``config.attributes["connection"]``; offline (SQL script) mode is not supported because the
manager always migrates the database it is about to use.
"""

from __future__ import annotations

from alembic import context

from alien.manager.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through alien.manager.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
