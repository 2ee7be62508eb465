"""Rows of a SELECT of columns, read through the session's connection rather than the ORM.

`Session.execute` hands every result to the ORM's loading (`loading.instances`), which builds
each row again even when the SELECT names columns, not entities. For the sweeps' pages of a
thousand candidates that was a sixth of their own Python (`py-spy` on the anonymize sweep over
a million protocols). The connection is the session's, so the statement runs in its
transaction, after a flush of what the session holds, as `Session.execute` would autoflush.

A row's names are the columns' own, not the mapped attributes': `Protocol.extra` (the column
`metadata`) comes back as `metadata`. Label such a column, or use `Session.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession


async def column_rows(session: AsyncSession, statement: Any) -> Sequence[Row[Any]]:
    """All rows of `statement` (a SELECT of columns) in the session's transaction."""
    if session.new or session.dirty or session.deleted:
        await session.flush()
    connection = await session.connection()
    return (await connection.execute(statement)).all()
