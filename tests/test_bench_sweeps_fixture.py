"""The sweeps bench's store looks like one the service filled: ids in the order protocols were
opened, each consumer's phone unrelated to its protocol's id (bench/sweeps.py, `rows`)."""

from __future__ import annotations

from bench.sweeps import rows


def test_ids_follow_the_opening_time_and_phones_do_not():
    protocols = [protocol for protocol, _event, _notes in rows(3000)]
    assert [p["id"] for p in protocols] == list(range(1, 3001))
    opened = [p["opened_at"] for p in protocols]
    assert opened == sorted(opened)
    phones = [p["consumer_phone"] for p in protocols]
    assert len(set(phones)) == len(phones)
    # Unrelated to the id: about half of the neighbours go down, not all up as in id order.
    down = sum(a > b for a, b in zip(phones, phones[1:], strict=False))
    assert 0.3 < down / len(phones) < 0.7


def test_the_older_fixture_is_kept_for_the_search_bench():
    protocols = [protocol for protocol, _event, _notes in rows(200, in_time_order=False)]
    assert [p["consumer_phone"] for p in protocols] == [f"+55119{i:08d}" for i in range(1, 201)]
    opened = [p["opened_at"] for p in protocols]
    assert opened != sorted(opened)
