"""Server-rendered SVG charts and their CSV data, for the strategy page (no JavaScript).

Pure functions of plain values: each returns a complete, standalone SVG document
(downloadable as is) whose text is escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from html import escape

WIDTH = 640
BAR_HEIGHT = 22
GAP = 6
LEFT = 90
RIGHT = 70
COLOURS = ("#1f4e79", "#2e75b6", "#5b9bd5", "#9dc3e6", "#c55a11", "#f4b183", "#548235")


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def weights_svg(weights: Sequence[tuple[str, Decimal]], *, title: str) -> str:
    """Horizontal bars, one per asset, largest first, labelled with the percentage."""
    rows = sorted(weights, key=lambda item: (-item[1], item[0]))
    height = max(1, len(rows)) * (BAR_HEIGHT + GAP) + GAP + 20
    span = WIDTH - LEFT - RIGHT
    top = max((w for _, w in rows), default=Decimal(0)) or Decimal(1)
    body = [
        f'<text x="{LEFT}" y="14" fill="#555">{escape(title)}</text>',
    ]
    for i, (symbol, weight) in enumerate(rows):
        y = 20 + GAP + i * (BAR_HEIGHT + GAP)
        length = float(weight / top) * span
        colour = COLOURS[i % len(COLOURS)]
        body.append(
            f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end">{escape(symbol)}</text>'
            f'<rect x="{LEFT}" y="{y}" width="{length:.2f}" height="{BAR_HEIGHT}" '
            f'fill="{colour}" data-symbol="{escape(symbol)}" data-weight="{weight}"/>'
            f'<text x="{LEFT + length + 6:.2f}" y="{y + 15}">{weight * 100:.2f}%</text>'
        )
    return _svg(WIDTH, height, title, body)


def frontier_svg(
    points: Sequence[tuple[float, float]], chosen: tuple[float, float], *, title: str
) -> str:
    """Expected return against volatility: the frontier as a line, the version as a dot."""
    width, height, pad = WIDTH, 360, 56
    xs = [p[0] for p in points] + [chosen[0]]
    ys = [p[1] for p in points] + [chosen[1]]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 0.01
    y1 = y1 if y1 > y0 else y0 + 0.01

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    path = " ".join(f"{sx(x):.2f},{sy(y):.2f}" for x, y in points)
    body = [
        f'<text x="{pad}" y="20" fill="#555">{escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
        f'<text x="{width / 2:.0f}" y="{height - 16}" text-anchor="middle">'
        "Volatility (a year)</text>",
        f'<text x="16" y="{height / 2:.0f}" transform="rotate(-90 16 {height / 2:.0f})" '
        'text-anchor="middle">Expected return (a year)</text>',
        f'<text x="{pad}" y="{height - pad + 16}" text-anchor="middle">{x0:.1%}</text>',
        f'<text x="{width - pad}" y="{height - pad + 16}" text-anchor="middle">{x1:.1%}</text>',
        f'<text x="{pad - 6}" y="{height - pad}" text-anchor="end">{y0:.1%}</text>',
        f'<text x="{pad - 6}" y="{pad + 4}" text-anchor="end">{y1:.1%}</text>',
    ]
    if points:
        body.append(
            f'<polyline points="{path}" fill="none" stroke="#2e75b6" stroke-width="2" '
            'data-series="frontier"/>'
        )
    body.append(
        f'<circle cx="{sx(chosen[0]):.2f}" cy="{sy(chosen[1]):.2f}" r="6" fill="#c55a11" '
        'data-series="chosen"><title>This version</title></circle>'
    )
    return _svg(width, height, title, body)


def rows_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["'" + c if isinstance(c, str) and c[:1] in "=+-@" else c for c in row])
    return out.getvalue()


def lines_svg(
    series: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    *,
    title: str,
    percent: bool = False,
    max_points: int = 400,
) -> str:
    """Line chart of named series over dates (ISO strings); every series shares the x axis.

    Long series are thinned to ``max_points`` evenly spaced points (the CSV has all).
    """
    width, height, pad = WIDTH, 300, 56
    values = [v for _, pts in series for _, v in pts]
    if not values:
        return _svg(width, height, title, [f'<text x="{pad}" y="20">{escape(title)}</text>'])
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-9
    n = max(len(pts) for _, pts in series)

    def sx(i: int) -> float:
        return pad + i / max(n - 1, 1) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)

    def label(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:,.0f}"

    body = [
        f'<text x="{pad}" y="20" fill="#555">{escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
        f'<text x="{pad - 6}" y="{height - pad}" text-anchor="end">{label(lo)}</text>',
        f'<text x="{pad - 6}" y="{pad + 4}" text-anchor="end">{label(hi)}</text>',
    ]
    first = series[0][1]
    if first:
        body.append(
            f'<text x="{pad}" y="{height - pad + 16}">{escape(first[0][0])}</text>'
            f'<text x="{width - pad}" y="{height - pad + 16}" text-anchor="end">'
            f"{escape(first[-1][0])}</text>"
        )
    step = max(1, n // max_points)
    for k, (name, pts) in enumerate(series):
        idx = list(range(0, len(pts), step))
        if idx and idx[-1] != len(pts) - 1:
            idx.append(len(pts) - 1)
        path = " ".join(f"{sx(i):.1f},{sy(pts[i][1]):.1f}" for i in idx)
        colour = COLOURS[k % len(COLOURS)]
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f'data-series="{escape(name)}"/>'
        )
        if len(series) > 1:
            body.append(
                f'<text x="{width - pad + 4}" y="{pad + 14 * k}" fill="{colour}">'
                f"{escape(name)}</text>"
            )
    return _svg(width, height, title, body)


def allocation_svg(rows: Sequence[tuple[str, Decimal, Decimal]], *, title: str) -> str:
    """Current weight against target weight, two bars per asset (symbol, current,
    target); a legend says which is which."""
    pair = 2 * BAR_HEIGHT // 2 + 4
    height = max(1, len(rows)) * (pair + GAP * 2) + 50
    span = WIDTH - LEFT - RIGHT
    top = max((max(c, t) for _, c, t in rows), default=Decimal(0)) or Decimal(1)
    body = [
        f'<text x="{LEFT}" y="14" fill="#555">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="22" width="12" height="10" fill="{COLOURS[1]}"/>'
        f'<text x="{LEFT + 16}" y="31">Now</text>'
        f'<rect x="{LEFT + 60}" y="22" width="12" height="10" fill="{COLOURS[5]}"/>'
        f'<text x="{LEFT + 76}" y="31">Target</text>',
    ]
    half = BAR_HEIGHT // 2
    for i, (symbol, current, target) in enumerate(rows):
        y = 44 + i * (pair + GAP * 2)
        body.append(
            f'<text x="{LEFT - 8}" y="{y + half + 4}" text-anchor="end">{escape(symbol)}</text>'
        )
        for j, (weight, colour, kind) in enumerate(
            ((current, COLOURS[1], "current"), (target, COLOURS[5], "target"))
        ):
            length = float(weight / top) * span if weight > 0 else 0.0
            yy = y + j * (half + 2)
            body.append(
                f'<rect x="{LEFT}" y="{yy}" width="{length:.2f}" height="{half}" '
                f'fill="{colour}" data-symbol="{escape(symbol)}" data-{kind}="{weight}"/>'
                f'<text x="{LEFT + length + 6:.2f}" y="{yy + half - 1}" font-size="10">'
                f"{weight * 100:.1f}%</text>"
            )
    return _svg(WIDTH, height, title, body)
