"""An INSERT of one row as text for a driver, per table and shape of row: what the two driver
paths share (store/sqlite_driver.py, store/postgres_driver.py), each with its own placeholders
and value conversions.

SQLAlchemy's Core fills a column left out with its `default=` (a constant); a driver does not,
so the INSERT writes those too. Server defaults need nothing: the database applies them. A
computed default (a function) cannot be worked out once per shape of row: such a table goes
through the Core instead (LookupError here, `can_insert` false in the drivers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.sql.schema import ScalarElementColumnDefault

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class InsertShape:
    sql: str
    columns: tuple[str, ...]  # the SQL's column names, in order: the given columns, then the defaulted ones
    converters: tuple[Convert | None, ...]  # per placeholder: the given columns, then the defaulted ones
    defaults: tuple[Any, ...]  # the defaulted columns' values, in the SQL's order

    def params(self, values: dict[str, Any]) -> list[Any]:
        """The driver's parameters for `values`, whose keys are this shape's columns, in order."""
        row = (*values.values(), *self.defaults)
        return [v if c is None else c(v) for c, v in zip(self.converters, row, strict=True)]


def insert_shape(table: Table, columns: tuple[str, ...], *, placeholders: Callable[[int], str],
                 converter: Callable[[Column[Any]], Convert | None], suffix: str = "") -> InsertShape:
    """`INSERT INTO table (columns…, defaulted…) VALUES (placeholders(n))` + suffix."""
    defaults = _scalar_defaults(table, columns)
    names = (*columns, *defaults)
    sql_names = tuple(table.c[n].name for n in names)
    sql = f"INSERT INTO {table.name} ({', '.join(sql_names)}) VALUES ({placeholders(len(names))}){suffix}"
    return InsertShape(sql, sql_names, tuple(converter(table.c[n]) for n in names), tuple(defaults.values()))


def shapeable(shape: Callable[[Table, tuple[str, ...]], InsertShape], table: Table, columns: tuple[str, ...]) -> bool:
    """Whether a driver's `shape` can write such a row (no computed default in the way)."""
    try:
        shape(table, columns)
    except LookupError:
        return False
    return True


def _scalar_defaults(table: Table, columns: tuple[str, ...]) -> dict[str, Any]:
    """The constant defaults of the columns not in `columns`; LookupError for a computed one."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.key in columns or column.primary_key or column.default is None:
            continue
        if not isinstance(column.default, ScalarElementColumnDefault):
            raise LookupError(f"{table.name}.{column.key} has a computed default")  # the Core path handles it
        defaults[column.key] = column.default.arg
    return defaults
