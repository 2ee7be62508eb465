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
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect start-up's garbage, then freeze everything alive; returns how many objects."""
    gc.collect()  # cycles left by start-up go now: once frozen they would stay until exit
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Hand the frozen objects back to the collector (a bench, between two gateways)."""
    gc.unfreeze()
