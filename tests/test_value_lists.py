"""`among(column, values)` (store/value_lists.py) selects exactly what `column.in_(values)` does,
on both databases: integers and strings, an empty list, negated, in SELECT, UPDATE and DELETE."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.store.models import OptOut, Protocol
from gateway.store.value_lists import among
from tests.test_migration_0012 import AT, protocol_row

LISTS = [[], [1], [2, 4, 99], list(range(1, 11))]
EMAILS = [[], ["c3@example.com"], ["c1@example.com", "nobody@example.com", "c7@example.com"]]


async def _fill(database) -> None:
    async with database.writer.begin() as conn:
        await conn.execute(Protocol.__table__.insert(), [
            protocol_row(i, consumer_email=f"c{i}@example.com") for i in range(1, 11)])
        await conn.execute(OptOut.__table__.insert(), [
            {"phone": f"+5511987650{i:03d}", "opted_out_at": AT, "keyword": "SAIR"} for i in range(1, 6)])


@pytest.mark.parametrize("negated", [False, True])
async def test_among_selects_what_in_selects(database, negated):
    await _fill(database)
    sqlite = database.is_sqlite
    async with database.read() as session:
        for column, lists in ((Protocol.id, LISTS), (Protocol.consumer_email, EMAILS)):
            for values in lists:
                ours, theirs = among(column, values, sqlite=sqlite), column.in_(values)
                if negated:
                    ours, theirs = ~ours, ~theirs
                got = (await session.scalars(sa.select(Protocol.id).where(ours).order_by(Protocol.id))).all()
                want = (await session.scalars(sa.select(Protocol.id).where(theirs).order_by(Protocol.id))).all()
                assert got == want, (column, values, negated)


async def test_a_longer_value_does_not_match_a_stored_one_it_begins_with(database):
    """PostgreSQL cuts a value cast to varchar(n) to n characters: a postal address given on
    resend (no "@", so among a batch's phones) must not match a 20-character stored phone."""
    async with database.writer.begin() as conn:
        await conn.execute(OptOut.__table__.insert(), [{"phone": "Rua das Flores, 1234", "opted_out_at": AT,
                                                        "keyword": "SAIR"}])
    async with database.read() as session:
        found = (await session.scalars(sa.select(OptOut.phone).where(
            among(OptOut.phone, ["Rua das Flores, 1234 - apto 56, Centro"], sqlite=database.is_sqlite)))).all()
    assert found == []


async def test_among_in_update_and_delete(database):
    await _fill(database)
    sqlite = database.is_sqlite
    async with database.write() as session:
        changed = await session.execute(sa.update(Protocol).where(among(Protocol.id, [2, 3, 42], sqlite=sqlite))
                                        .values(subject="").execution_options(synchronize_session=False))
        assert changed.rowcount == 2
        gone = await session.execute(sa.delete(OptOut).where(
            among(OptOut.phone, ["+5511987650001", "+5511987650004", "+5511900000000"], sqlite=sqlite))
            .execution_options(synchronize_session=False))
        assert gone.rowcount == 2
    async with database.read() as session:
        assert (await session.scalars(sa.select(Protocol.id).where(Protocol.subject == "")
                                      .order_by(Protocol.id))).all() == [2, 3]
        assert sorted((await session.scalars(sa.select(OptOut.phone))).all()) == [
            "+5511987650002", "+5511987650003", "+5511987650005"]
