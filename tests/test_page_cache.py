"""The anonymize sweep's room in the writer's page cache (store/page_cache.py): for the block
only, on the writer connection every write transaction of the block runs on, never smaller."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.store.page_cache import KIB_PER_PROTOCOL, MAX_KIB, writer_cache_for


async def _writer_cache(database) -> int:
    async with database.write() as session:  # the writer's one connection, as the sweep's batches
        return int((await session.execute(text("PRAGMA cache_size"))).scalar_one())


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_the_writer_has_room_for_a_batch_for_the_block_only(database):
    before = await _writer_cache(database)
    async with writer_cache_for(database, 1000):
        assert await _writer_cache(database) == -1000 * KIB_PER_PROTOCOL  # KiB, as SQLite writes it
        async with database.write() as session:
            await session.execute(text("CREATE TABLE t (x)"))
        assert await _writer_cache(database) == -1000 * KIB_PER_PROTOCOL  # kept across transactions
    assert await _writer_cache(database) == before


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_the_room_has_a_ceiling_and_never_makes_the_cache_smaller(database):
    async with writer_cache_for(database, 10**9):
        assert await _writer_cache(database) == -MAX_KIB
        async with writer_cache_for(database, 10):  # already roomier: left as it is
            assert await _writer_cache(database) == -MAX_KIB
        assert await _writer_cache(database) == -MAX_KIB


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_the_room_is_given_back_when_the_block_fails(database):
    before = await _writer_cache(database)
    with pytest.raises(RuntimeError):
        async with writer_cache_for(database, 1000):
            raise RuntimeError("a batch failed")
    assert await _writer_cache(database) == before


@pytest.mark.parametrize("engine_name", ["postgresql"], indirect=True)
async def test_nothing_happens_on_postgresql(database):
    async with writer_cache_for(database, 1000):
        async with database.write() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_overlapping_blocks_keep_the_largest_until_the_last_ends(database):
    """Two anonymize schedules may run at once: the one that ends first must not shrink the other's
    room, nor the other give back the first one's when it ends."""
    before = await _writer_cache(database)
    small, large = writer_cache_for(database, 500), writer_cache_for(database, 1000)
    await small.__aenter__()
    assert await _writer_cache(database) == -500 * KIB_PER_PROTOCOL
    await large.__aenter__()
    assert await _writer_cache(database) == -1000 * KIB_PER_PROTOCOL
    await small.__aexit__(None, None, None)  # the smaller one ends first
    assert await _writer_cache(database) == -1000 * KIB_PER_PROTOCOL
    await large.__aexit__(None, None, None)
    assert await _writer_cache(database) == before


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
async def test_a_cache_set_in_pages_is_compared_in_bytes(database):
    async with database.write() as session:
        await session.execute(text("PRAGMA cache_size=20000"))  # pages: 80 MiB of 4 KiB pages
    async with writer_cache_for(database, 1000):  # 32 MiB: less room than it has
        assert await _writer_cache(database) == 20000
    async with writer_cache_for(database, 5000):  # 160 MiB: more
        assert await _writer_cache(database) == -5000 * KIB_PER_PROTOCOL
    assert await _writer_cache(database) == 20000
