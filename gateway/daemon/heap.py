"""What the daemon built before serving, kept out of the garbage collector's full passes.

By the time it serves, the process holds ~160,000 objects that live as long as it does: the
modules, SQLAlchemy's mappers and tables, Jinja's compiled templates, Babel's and
phonenumbers' data. CPython's full collection (its oldest generation) walks every one of them,
and under load it runs every few seconds: 100 to 140 ms each, during which the one thread that
answers HTTP and sends the messages stands still. In the end-to-end bench at 200 and 300
events/s that was five pauses in 15 s, each longer than the 100 ms end-to-end p99 aimed for
(timed with `gc.callbacks`; `python -m bench --scenarios e2e` now reports the longest).

`gc.freeze()` moves them to a generation the collector never walks: a full pass then takes
~20 ms (the end-to-end bench on SQLite at 300 events/s: no pause reached 5 ms; what a
backlog keeps alive is not frozen and still walked). Nothing else changes for them:
reference counting frees any of them dropped later, as before. Only a reference cycle among
them is never collected: start-up's own garbage goes first, and what start-up built and is
dropped later stays, at most once each (a template compiled at start-up and then edited and
reloaded; a pooled database connection replaced after an outage): bounded by what was frozen,
never growing with time. Hence once, by the daemon, never by a process that builds many
runtimes one after the other (the tests; the benches thaw between rounds).

The young generation is collected less often too: CPython's default walks it every 700
allocations (net), about 7 times per 100 ingested events, 25 to 40 µs of each event's ~1.2 ms
of CPU in all (`gc.callbacks`; the ingest bench's "GC µs/event", 50 clients on SQLite). Every
10,000 it is 1 to 6 µs, each collection up to ~5 ms instead of ~1.5 (against a 100 ms
end-to-end p99). What a young collection frees is reference cycles only; everything else goes
at once by reference counting, so little more memory waits between two.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations (net) between two collections of the youngest generation

_threshold_before: list[tuple[int, int, int]] = []  # to hand back at thaw()


def freeze_start_up() -> int:
    """Collect start-up's garbage, then freeze everything alive and collect the young generation
    less often; returns how many objects were frozen."""
    gc.collect()  # cycles left by start-up go now: once frozen they would stay until exit
    gc.freeze()
    before = gc.get_threshold()
    if not _threshold_before:
        _threshold_before.append(before)
    gc.set_threshold(YOUNG_THRESHOLD, *before[1:])
    return gc.get_freeze_count()


def thaw() -> None:
    """Hand the frozen objects back to the collector, at its thresholds of before (a bench,
    between two gateways)."""
    gc.unfreeze()
    if _threshold_before:
        gc.set_threshold(*_threshold_before.pop())
