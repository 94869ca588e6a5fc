"""Hot statements sent straight to the DB-API cursor, compiled once per database.

Why: a remote command costs the manager two write transactions, and each writes a command row
and an audit record. Through ``Session.execute`` every such executemany paid 100-150 µs of
SQLAlchemy's per-call machinery (cache-key generation, execution context, result set-up, event
dispatch) for a statement the driver itself runs in about 20 µs. :class:`DriverStatement` keeps
what SQLAlchemy is good at — compiling the statement for the dialect and each column type's bind
processing (UTC datetimes, JSON) — and does only that once: each call converts the rows with the
cached processors and hands them to the cursor of the session's own connection, inside the
session's transaction.

What the shortcut would otherwise lose is restored here: the written table is marked for the row
caches (:func:`alien.manager.row_cache.mark_written`), as their cursor hook would have done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ValuesBase

from alien.manager.row_cache import mark_written

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names, in the order a positional driver wants them
    processors: tuple[Processor, ...]
    positional: bool


class DriverStatement:
    """An INSERT or UPDATE run by the driver with rows of bind values (see the
    module docstring). Rows are mappings of bind name → Python value, as ``Session.execute``
    takes them; every bind of the statement takes its value from the rows (a literal in the
    statement has no name to look up: use a named ``bindparam`` and put it in each row)."""

    def __init__(self, statement: ValuesBase) -> None:
        self._statement = statement
        self._table = statement.table.name  # type: ignore[attr-defined]  # the written table
        self._compiled: dict[tuple[str, str], _Compiled] = {}  # by dialect and driver

    def executemany(self, session: Session, rows: Iterable[Mapping[str, Any]]) -> None:
        connection = session.connection()
        compiled = self._for(connection.dialect)
        names, processors = compiled.names, compiled.processors
        params: list[Any] = []
        for row in rows:
            values = [
                row[name] if process is None else process(row[name])
                for name, process in zip(names, processors, strict=True)
            ]
            params.append(values if compiled.positional else dict(zip(names, values, strict=True)))
        if not params:
            return
        mark_written(connection, self._table)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, params)
        finally:
            cursor.close()

    def _for(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        compiled = self._compiled.get(key)
        if compiled is None:
            sql = self._statement.compile(dialect=dialect)
            binds = sql.binds
            names = tuple(sql.positiontup or ()) if dialect.positional else tuple(binds)
            processors = tuple(
                binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
            )
            compiled = self._compiled[key] = _Compiled(
                sql.string, names, processors, dialect.positional
            )
        return compiled
