"""The whole history by SMS, in parts: as many messages as it takes, each at most `cap`
segments, never shortened (Decreto 11.034/2022 art. 12 §2: the history by the channel the
consumer chose). Whole entries where they fit; an entry too long for a message of its own is
cut between words and goes on in the next part, which says so (`continued`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.rendering.templates import Rendered

# (entries, part, parts) -> that part rendered as an SMS.
RenderPart = Callable[[list[dict[str, Any]], int, int], Rendered]
# While planning, parts are rendered as "part i of PLANNED": wider than any real count, so a
# part planned to fit still fits once the real count is known.
PLANNED = 99


class CannotSplit(ValueError):
    """A part cannot hold even its header and one character of text: `cap` is too small."""


def split_history(render: RenderPart, entries: Sequence[dict[str, Any]], cap: int,
                  size: Callable[[Rendered], int] | None = None) -> list[Rendered]:
    """`size` measures a part against `cap`: SMS segments unless given (WhatsApp: characters)."""
    measure = size or _segments
    whole = render(list(entries), 1, 1)
    if measure(whole) <= cap:
        return [whole]

    def fits(run: list[dict[str, Any]], part: int) -> bool:
        return measure(render(run, part, PLANNED)) <= cap

    runs: list[list[dict[str, Any]]] = []
    run: list[dict[str, Any]] = []
    queue = list(entries)
    while queue:
        entry = queue.pop(0)
        part = len(runs) + 1
        if fits([*run, entry], part):
            run.append(entry)
        elif run:  # this part is full: the entry starts the next one
            runs.append(run)
            run = []
            queue.insert(0, entry)
        else:  # too long for a part of its own: as much as fits here, the rest next
            head, rest = _cut(entry, lambda piece, part=part: fits([piece], part))
            runs.append([head])
            queue.insert(0, rest)
    if run:
        runs.append(run)
    return [render(r, i, len(runs)) for i, r in enumerate(runs, 1)]


def _cut(entry: dict[str, Any], fits: Callable[[dict[str, Any]], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The longest head of the entry's text that fits (between words, else between characters)."""
    text = " ".join(str(entry.get("text") or "").split())
    words = text.split(" ")
    ends = [len(" ".join(words[: i + 1])) for i in range(len(words) - 1)]  # where a cut between words falls
    best = _longest(ends, lambda end: fits({**entry, "text": text[:end]}))
    if best is None:  # not even the first word fits: cut inside it
        best = _longest(list(range(1, len(text))), lambda end: fits({**entry, "text": text[:end]}))
    if best is None:
        raise CannotSplit("not one character of text fits in a part of the history at this cap")
    return {**entry, "text": text[:best]}, {**entry, "text": text[best:].lstrip(), "continued": True}


def _longest(ends: list[int], fits: Callable[[int], bool]) -> int | None:
    """The largest end that fits, by bisection (a longer head never fits where a shorter did not)."""
    lo, hi, found = 0, len(ends) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(ends[mid]):
            found, lo = ends[mid], mid + 1
        else:
            hi = mid - 1
    return found


def _segments(rendered: Rendered) -> int:
    assert rendered.sms is not None, "the history is split for SMS only"
    return rendered.sms.segments
