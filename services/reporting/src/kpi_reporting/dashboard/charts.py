"""Charts as geometry, drawn as SVG by the templates on the server: no script, no style attribute (the
pages run under a CSP without 'unsafe-inline'), so colours are SVG `fill` attributes and CSS classes.

Every function takes the numbers a read model answered and returns coordinates; nothing here scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

LIGHT, DARK = (0xEE, 0xF3, 0xFA), (0x0B, 0x3C, 0x7D)  # the heat map's 0 % and 100 %


def _value(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


def _tick(value: Decimal) -> str:
    """A grid line's value: 0, whole from 10 on, two decimals below."""
    if value == 0:
        return "0"
    return str(value.quantize(Decimal(1) if value >= 10 else Decimal("0.01")))


def share_of(points: str | None, maximum: str | None) -> float | None:
    """Points as a share of the max, within [0, 1]; None when either is unknown or the max is 0."""
    value, top = _value(points), _value(maximum)
    if value is None or top is None or top <= 0:
        return None
    return float(min(max(value / top, Decimal(0)), Decimal(1)))


def shade(share: float | None) -> str:
    """The heat map's colour for a share: from light (0) to dark blue (1); grey for no value."""
    if share is None:
        return "#d9d9d9"
    channels = (round(low + (high - low) * share) for low, high in zip(LIGHT, DARK, strict=True))
    return "#" + "".join(f"{channel:02x}" for channel in channels)


def _luminance(colour: str) -> float:
    """WCAG 2's relative luminance of "#rrggbb"."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    """WCAG 2's contrast ratio of two colours, from 1 to 21."""
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


INKS = ("#000000", "#ffffff")


def ink(share: float | None) -> str:
    """Text on a shaded cell: black or white, whichever stands out more (at least 4.5:1 on every shade)."""
    fill = shade(share)
    return max(INKS, key=lambda colour: contrast(fill, colour))


@dataclass(frozen=True)
class Bar:
    label: str
    points: str | None
    y: float
    width: float
    href: str | None = None


@dataclass(frozen=True)
class BarChart:
    width: float
    height: float
    label_width: float
    plot_width: float
    bar_height: float
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, value) of each grid line


def bar_chart(
    items: Sequence[tuple[str, str | None, str | None]],
    maximum: str | None,
    *,
    width: float = 760,
    label_width: float = 190,
    bar_height: float = 14,
    gap: float = 4,
    top: float = 20,
) -> BarChart:
    """Horizontal bars, one per (label, points, link), scaled to `maximum` (else to the largest)."""
    values = [_value(points) or Decimal(0) for _, points, _ in items]
    scale = _value(maximum) or max(values, default=Decimal(0))
    plot = width - label_width - 60
    bars = tuple(
        Bar(
            label,
            points,
            top + index * (bar_height + gap),
            float(value / scale) * plot if scale > 0 else 0.0,
            href,
        )
        for index, ((label, points, href), value) in enumerate(zip(items, values, strict=True))
    )
    ticks = tuple((label_width + plot * step / 4, _tick(scale * step / 4)) for step in range(5)) if scale > 0 else ()
    return BarChart(width, top + len(bars) * (bar_height + gap) + 4, label_width, plot, bar_height, bars, ticks)


@dataclass(frozen=True)
class Cell:
    x: int
    heading: str
    points: str | None
    share: float | None
    fill: str
    ink: str


@dataclass(frozen=True)
class HeatMap:
    """Whole-pixel geometry: each row is drawn at its `y` (an SVG translate), each cell at its `x`."""

    width: int
    height: int
    label_width: int
    cell_width: int
    cell_height: int
    top: int
    columns: tuple[tuple[int, str, str | None], ...]  # (x of the column's middle, its heading, its max)
    rows: tuple[tuple[int, str, tuple[Cell, ...]], ...]  # (y, label, cells)


def heat_map(
    columns: Sequence[tuple[str, str | None]],
    rows: Sequence[tuple[str, Sequence[str | None]]],
    *,
    label_width: int = 190,
    cell_width: int = 56,
    cell_height: int = 16,
    top: int = 22,
) -> HeatMap:
    """Rows (label, points per column) × columns (heading, max): each cell shaded by its share of the max."""
    drawn = []
    for index, (label, values) in enumerate(rows):
        cells = []
        for column, ((heading, maximum), points) in enumerate(zip(columns, values, strict=True)):
            fraction = share_of(points, maximum)
            x = label_width + column * cell_width
            cells.append(Cell(x, heading, points, fraction, shade(fraction), ink(fraction)))
        drawn.append((top + index * cell_height, label, tuple(cells)))
    headings = tuple(
        (label_width + i * cell_width + cell_width // 2, heading, maximum)
        for i, (heading, maximum) in enumerate(columns)
    )
    width = label_width + len(columns) * cell_width + 4
    return HeatMap(
        width, top + len(rows) * cell_height + 4, label_width, cell_width, cell_height, top, headings, tuple(drawn)
    )


@dataclass(frozen=True)
class Series:
    name: str
    kind: str  # a CSS class: unit, predecessor, successor, median, best
    path: str  # an SVG path; a period without a value breaks the line
    points: tuple[tuple[float, float, int, str], ...]  # (x, y, period, points)


@dataclass(frozen=True)
class LineChart:
    width: float
    height: float
    left: float
    top: float
    bottom: float
    right: float
    x_ticks: tuple[tuple[float, int], ...]
    y_ticks: tuple[tuple[float, str], ...]
    series: tuple[Series, ...]


def line_chart(
    periods: Sequence[int],
    series: Sequence[tuple[str, str, dict[int, str | None]]],
    maximum: str | None,
    *,
    width: float = 640,
    height: float = 240,
    left: float = 56,
    right: float = 16,
    top: float = 16,
    bottom: float = 28,
) -> LineChart:
    """One line per (name, kind, points by period) over the periods, the y axis from 0 to `maximum`
    (else to the largest value); a single period is drawn as points in the middle."""
    values = [v for _, _, by_period in series for v in (_value(p) for p in by_period.values()) if v is not None]
    scale = _value(maximum) or max(values, default=Decimal(0)) or Decimal(1)
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(len(periods) - 1, 1)

    def x(index: int) -> float:
        return left + (plot_w * index / span if len(periods) > 1 else plot_w / 2)

    def y(value: Decimal) -> float:
        return top + plot_h - float(min(value, scale) / scale) * plot_h

    drawn = []
    for name, kind, by_period in series:
        marks: list[tuple[float, float, int, str]] = []
        path: list[str] = []
        pen_down = False
        for index, period in enumerate(periods):
            value = _value(by_period.get(period))
            if value is None:
                pen_down = False
                continue
            px, py = x(index), y(value)
            path.append(f"{'L' if pen_down else 'M'}{px:.1f} {py:.1f}")
            pen_down = True
            marks.append((px, py, period, str(by_period[period])))
        drawn.append(Series(name, kind, " ".join(path), tuple(marks)))
    x_ticks = tuple((x(index), period) for index, period in enumerate(periods))
    y_ticks = tuple((y(scale * step / 4), _tick(scale * step / 4)) for step in range(5))
    return LineChart(width, height, left, top, bottom, right, x_ticks, y_ticks, tuple(drawn))
