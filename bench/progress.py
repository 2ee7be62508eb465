"""Progress lines on stderr, so a long run shows it is alive without polluting stdout."""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


class Ticker:
    """Says `label done/total` each time another tenth of the work is done."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._step = max(1, total // 10)

    def add(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        if before // self._step != self.done // self._step or self.done == self.total:
            say(f"{self.label}: {self.done}/{self.total}")
