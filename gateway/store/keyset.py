"""Keyset paging conditions: rows strictly after (or before) a cursor in (column, id) order.

The comparison on the column alone comes first so that the column's index gives both the
range and the order. Written as `column > v OR (column = v AND id > i)`, SQLite with bound
parameters plans a MULTI-INDEX OR (or a scan) and sorts every row left in the range for each
page: profiled over a million protocols, 140 ms a sweep's page and 300 ms a search's second
page, against well under a millisecond this way. PostgreSQL reads both forms well.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, true


def after(columns: tuple[Any, Any], cursor: tuple[Any, Any] | None) -> Any:
    """Rows strictly after `cursor` in ascending (column, id) order."""
    if cursor is None:
        return true()
    value, ident = columns
    return and_(value >= cursor[0], or_(value > cursor[0], ident > cursor[1]))


def before(columns: tuple[Any, Any], cursor: tuple[Any, Any] | None) -> Any:
    """Rows strictly after `cursor` in descending (column, id) order (newest first)."""
    if cursor is None:
        return true()
    value, ident = columns
    return and_(value <= cursor[0], or_(value < cursor[0], ident < cursor[1]))
