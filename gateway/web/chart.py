"""A bar chart as SVG, drawn on the server: no charting library, no script, nothing for the CSP to allow."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

BAR, GAP, LABEL_WIDTH, PLOT_WIDTH = 14, 10, 180, 420  # pixels


def bars(title: str, rows: list[tuple[str, int, int]], legend: tuple[str, str]) -> Markup:
    """Two bars per row (a count and the part of it that did well), labelled with their numbers."""
    top = max((a for _, a, _ in rows), default=0) or 1
    height = len(rows) * (2 * BAR + GAP) + 40
    width = LABEL_WIDTH + PLOT_WIDTH + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<rect class="bar-opened" x="{LABEL_WIDTH}" y="4" width="12" height="12"/>'
             f'<text x="{LABEL_WIDTH + 16}" y="15">{escape(legend[0])}</text>',
             f'<rect class="bar-in-time" x="{LABEL_WIDTH + 160}" y="4" width="12" height="12"/>'
             f'<text x="{LABEL_WIDTH + 176}" y="15">{escape(legend[1])}</text>']
    for i, (label, whole, part) in enumerate(rows):
        y = 30 + i * (2 * BAR + GAP)
        parts.append(f'<text x="0" y="{y + BAR + 4}">{escape(label[:28])}</text>')
        for j, (value, css) in enumerate(((whole, "bar-opened"), (part, "bar-in-time"))):
            w = round(PLOT_WIDTH * value / top)
            parts.append(f'<rect class="{css}" x="{LABEL_WIDTH}" y="{y + j * BAR}" width="{w}" height="{BAR - 2}"/>'
                         f'<text x="{LABEL_WIDTH + w + 4}" y="{y + j * BAR + BAR - 3}">{value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
