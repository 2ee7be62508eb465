"""The daemon's start-up heap, frozen out of the collector's full passes (gateway/daemon/heap.py).
That `protocol-gateway run` freezes it, and still serves, is in tests/test_e2e.py."""

from __future__ import annotations

import gc
import weakref

from gateway.daemon.heap import YOUNG_THRESHOLD, freeze_start_up, thaw


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_start_up_garbage_is_collected_before_the_rest_is_frozen() -> None:
    alive, dropped = _Node(), _Node()
    gone = weakref.ref(dropped)
    del dropped
    before = gc.get_threshold()
    try:
        frozen = freeze_start_up()
        assert gone() is None  # frozen, the cycle would have stayed until exit
        assert frozen == gc.get_freeze_count() > 0
        # What is alive is frozen: the oldest generation, all a full pass walks, no longer holds it.
        assert not any(obj is alive for obj in gc.get_objects(generation=2))
        # The young generation is collected less often; the older ones as they were.
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:]) and YOUNG_THRESHOLD > before[0]
    finally:
        thaw()  # this test process builds runtimes again and again: it must not keep them
    assert gc.get_freeze_count() == 0
    assert any(obj is alive for obj in gc.get_objects(generation=2))
    assert gc.get_threshold() == before


def test_a_young_cycle_is_still_collected_under_the_higher_threshold() -> None:
    try:
        freeze_start_up()
        dropped = _Node()
        gone = weakref.ref(dropped)
        del dropped
        # The collector counts containers allocated and not yet freed: these stay until it has run.
        kept = [[] for _ in range(YOUNG_THRESHOLD * 2)]
        assert gone() is None and kept
    finally:
        thaw()
