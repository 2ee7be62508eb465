"""The Python-side defaults an INSERT straight to a driver must write itself.

SQLAlchemy's Core fills a column left out with its `default=` (a constant); a driver does not.
Server defaults need nothing: the database applies them. A computed default (a function)
cannot be worked out once per shape of row: such a table goes through the Core instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql.schema import ScalarElementColumnDefault


def scalar_defaults(table: Table, columns: tuple[str, ...]) -> dict[str, Any]:
    """The constant defaults of the columns not in `columns`; LookupError for a computed one."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.key in columns or column.primary_key or column.default is None:
            continue
        if not isinstance(column.default, ScalarElementColumnDefault):
            raise LookupError(f"{table.name}.{column.key} has a computed default")  # the Core path handles it
        defaults[column.key] = column.default.arg
    return defaults
