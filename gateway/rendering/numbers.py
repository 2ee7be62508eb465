"""A protocol number as a person reads it: in groups of three or four digits, so that it can be
read aloud and checked by eye ("2026 1122 000 000 017"), and in HTML still copied whole."""

from __future__ import annotations

from markupsafe import Markup, escape

GROUP = 4  # digits at most in a group; groups are as even as that allows, none under 3 digits


def groups(number: str) -> list[str]:
    """"20261122000000017" -> ["2026", "1122", "000", "000", "017"]; anything but 7+ digits is kept whole."""
    if not number.isdigit() or len(number) < 7:
        return [number]
    count = -(-len(number) // GROUP)
    size, longer = divmod(len(number), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < longer else 0)
        out.append(number[start:end])
        start = end
    return out


def grouped(number: object) -> str:
    """The groups joined by spaces, for text and SMS (the inbound keywords accept the spaces back)."""
    return " ".join(groups(str(number)))


def grouped_html(number: object) -> Markup:
    """The groups set apart by a margin, not by spaces, so that copying the number gives the digits alone."""
    parts = groups(str(number))
    if len(parts) > 1:  # digits alone (groups() splits nothing else): nothing to escape
        rest = "".join([f'<span style="margin-left:0.3em">{p}</span>' for p in parts[1:]])
        return Markup(f"<span>{parts[0]}</span>{rest}")
    return Markup(f"<span>{escape(parts[0])}</span>")
