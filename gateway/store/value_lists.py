"""`column IN (values)` as one bound parameter, whatever the number of values.

SQLAlchemy's `in_()` binds one parameter per value and renders them into the statement at each
execution; a sweep's batch of hundreds of ids did that in every statement (profiled over a
million protocols: a third of the anonymize sweep's own CPU was turning id lists into
parameters). Here the list is one value: a JSON array that SQLite reads with `json_each`, an
array that PostgreSQL compares with `= ANY`. Both still look each value up in the column's
index.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import String, Text, any_, bindparam, func, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY


def among(column: Any, values: Collection[Any], *, sqlite: bool) -> Any:
    """`column IN values` (none: false), for integers or strings."""
    listed = list(values)
    if sqlite:
        each = func.json_each(bindparam(None, json.dumps(listed), type_=String)).table_valued("value")
        return column.in_(select(each.c.value))
    # Strings as text[]: a cast to the column's varchar(n)[] would cut a longer value to n
    # characters without a word, and a cut value can equal a stored one.
    element = Text() if isinstance(column.type, String) else column.type
    return column == any_(bindparam(None, listed, type_=ARRAY(element)))


def rows_of(columns: dict[str, tuple[Any, Sequence[Any]]], *, sqlite: bool) -> Any:
    """A FROM of rows given a column at a time (`{name: (type, values)}`, the lists of one
    length), as one bound parameter on SQLite and one a column on PostgreSQL: an INSERT … SELECT
    from it writes many rows with the parameters processed once, where an executemany processes
    each row's (an anonymize batch's audit entries each dumped the same JSON document again).
    The rows come in the lists' order."""
    names = list(columns)
    if sqlite:
        listed = json.dumps([list(row) for row in zip(*(values for _, values in columns.values()))])
        each = func.json_each(bindparam(None, listed, type_=String)).table_valued("value")
        return select(*(type_coerce(func.json_extract(each.c.value, f"$[{i}]"), type_).label(name)
                        for i, (name, (type_, _)) in enumerate(columns.items()))).subquery()
    arrays = [bindparam(None, list(values), type_=ARRAY(type_)) for type_, values in columns.values()]
    return func.unnest(*arrays).table_valued(*names).render_derived()
