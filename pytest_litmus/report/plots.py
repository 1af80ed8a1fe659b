"""SVG plots for reports, drawn by matplotlib without pyplot (no global state, no display).

matplotlib is imported when a plot is drawn, never when this module is;
without it every function raises :class:`~pytest_litmus.errors.ReportUnavailable`.
Text stays text in the SVG (``svg.fonttype: none``: names are searchable and
small), ``$`` in a name is not mathtext, and each SVG's ids carry a prefix of
their own, so many can sit inline in one HTML page.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pytest_litmus.errors import ReportUnavailable
from pytest_litmus.limits import format_number

__all__ = ["Bar", "bars_svg", "histogram_svg", "require", "run_chart_svg", "series_svg"]

PASS, FAIL, MARGINAL, BAND, OPEN, SHADE = "#1a7f37", "#cf222e", "#bf8700", "#dafbe1", "#eef6ee", "#fff1c2"
#: Points drawn of a series; longer ones are reduced to a min/max envelope of this many buckets.
MAX_POINTS = 4000
_counter = itertools.count(1)
_ID = re.compile(r'(\bid="|url\(#|href="#)')


@dataclass(frozen=True)
class Bar:
    """One measurement drawn against its limits."""

    name: str
    value: float
    low: float | None
    high: float | None
    marginal_low: float | None = None
    marginal_high: float | None = None
    outcome: str = "passed"
    marginal: bool = False
    label: str = ""


def require() -> None:
    """Raise :class:`ReportUnavailable` now if matplotlib cannot be imported."""
    with _style():
        pass


@contextmanager
def _style() -> Iterator[Any]:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportUnavailable(exc.name or "matplotlib") from None
    with matplotlib.rc_context({"svg.fonttype": "none", "text.parse_math": False, "font.size": 9}):
        yield Figure


def _svg(fig: Any) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    out = io.StringIO()
    FigureCanvasSVG(fig).print_svg(  # type: ignore[no-untyped-call]
        out, metadata={"Creator": None, "Date": None, "Format": None, "Type": None}
    )
    text = out.getvalue()
    text = text[text.index("<svg") :]
    prefix = f"litmus{next(_counter)}-"
    return _ID.sub(lambda m: f"{m.group(1)}{prefix}", text)


def _window(bar: Bar) -> tuple[float, float]:
    """The values drawn at 0 and 1: the limits, or one limit and a span that shows the value."""
    low, high, v = bar.low, bar.high, bar.value
    if low is not None and high is not None:
        if high > low:
            return low, high
        span = abs(low) * 0.01 or 1.0
        return low - span, high + span
    limit = low if low is not None else high
    assert limit is not None
    span = max(abs(v - limit) * 1.25, abs(limit) * 0.1, 1e-12) or 1.0
    return (limit, limit + span) if low is not None else (limit - span, limit)


def bars_svg(bars: Sequence[Bar], title: str | None = None) -> str:
    """One row per measurement: the limits as a band from 0 to 1, marginal parts shaded, the value a marker.

    Each row has its own scale (the limits' span); a value beyond the drawn
    range sits at the edge as an arrow. One-sided limits fade towards the open side.
    """
    with _style() as Figure:
        fig = Figure(figsize=(7.5, 0.42 * len(bars) + 0.5), layout="constrained")
        ax = fig.add_subplot()
        for row, bar in enumerate(reversed(bars)):
            a, b = _window(bar)

            def t(x: float, a: float = a, b: float = b) -> float:
                return (x - a) / (b - a)

            ax.barh(row, 1.0, left=0.0, height=0.5, color=BAND, edgecolor="#8c959f", linewidth=0.6)
            if bar.low is None:
                ax.barh(row, 0.3, left=-0.3, height=0.5, color=OPEN, linewidth=0)
            if bar.high is None:
                ax.barh(row, 0.3, left=1.0, height=0.5, color=OPEN, linewidth=0)
            for lo, hi in ((bar.low, bar.marginal_low), (bar.marginal_high, bar.high)):
                if lo is not None and hi is not None and hi > lo:
                    ax.barh(row, t(hi) - t(lo), left=t(lo), height=0.5, color=SHADE, linewidth=0)
            pos = t(bar.value)
            shown = min(max(pos, -0.28), 1.28)
            marker = "o" if shown == pos else ("<" if pos < 0 else ">")
            color = FAIL if bar.outcome == "failed" else MARGINAL if bar.marginal else PASS
            ax.plot([shown], [row], marker=marker, color=color, markersize=8, zorder=3)
            for x, limit in ((0.0, bar.low), (1.0, bar.high)):
                if limit is not None:
                    ax.text(x, row + 0.3, format_number(limit), ha="center", va="bottom", fontsize=7, color="#57606a")
            ax.text(1.33, row, bar.label, va="center", fontsize=8, color=color)
        ax.set_yticks(range(len(bars)), [b.name for b in reversed(bars)])
        ax.set_xlim(-0.32, 1.32)
        ax.set_ylim(-0.6, len(bars) - 0.2)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        if title:
            ax.set_title(title, loc="left", fontsize=9)
        return _svg(fig)


def _reduce(x: Sequence[float] | None, y: Sequence[float]) -> tuple[Any, Any]:
    """At most about :data:`MAX_POINTS` points: each bucket of a long series becomes its min and max."""
    import numpy as np

    ys = np.asarray(y, dtype=float)
    xs = np.arange(len(ys), dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(ys) <= MAX_POINTS:
        return xs, ys
    buckets = MAX_POINTS // 2
    edges = np.linspace(0, len(ys), buckets + 1).astype(int)
    keep = []
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            part = ys[lo:hi]
            keep += sorted({lo + int(part.argmin()), lo + int(part.argmax())})
    index = np.asarray(keep)
    return xs[index], ys[index]


def series_svg(name: str, x: Sequence[float] | None, y: Sequence[float], units: str | None = None) -> str:
    """A line plot of a stored series (x: its own, or the sample index)."""
    with _style() as Figure:
        fig = Figure(figsize=(7.5, 2.4), layout="constrained")
        ax = fig.add_subplot()
        xs, ys = _reduce(x, y)
        ax.plot(xs, ys, color="#0969da", linewidth=0.9)
        ax.set_title(name, loc="left", fontsize=9)
        ax.set_xlabel("sample" if x is None else "x")
        if units:
            ax.set_ylabel(units)
        ax.grid(True, linewidth=0.3)
        return _svg(fig)


def _limit_lines(ax: Any, low: float | None, high: float | None, vertical: bool) -> None:
    for limit, label in ((low, "low"), (high, "high")):
        if limit is not None:
            line = ax.axvline if vertical else ax.axhline
            line(limit, color=FAIL, linestyle="--", linewidth=1, label=f"{label} {format_number(limit)}")


def histogram_svg(values: Sequence[float], low: float | None, high: float | None, title: str) -> str:
    """A histogram of ``values`` with the limits (dashed) and the mean (dotted)."""
    with _style() as Figure:
        fig = Figure(figsize=(6, 2.6), layout="constrained")
        ax = fig.add_subplot()
        ax.hist(values, bins=min(40, max(5, len(values) // 4)), color="#54aeff", edgecolor="#0969da")
        _limit_lines(ax, low, high, vertical=True)
        if values:
            ax.axvline(sum(values) / len(values), color="#57606a", linestyle=":", linewidth=1, label="mean")
        ax.set_title(title, loc="left", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        return _svg(fig)


def run_chart_svg(
    values: Sequence[float], outcomes: Sequence[str], low: float | None, high: float | None, title: str
) -> str:
    """The values in time order (failed ones red), the limits dashed."""
    with _style() as Figure:
        fig = Figure(figsize=(6, 2.6), layout="constrained")
        ax = fig.add_subplot()
        index = range(1, len(values) + 1)
        ax.plot(index, values, color="#8c959f", linewidth=0.7)
        colors = [FAIL if o == "failed" else PASS for o in outcomes]
        ax.scatter(index, values, c=colors, s=12, zorder=3)
        _limit_lines(ax, low, high, vertical=False)
        ax.set_xlabel("measurement, oldest first")
        ax.set_title(title, loc="left", fontsize=9)
        ax.grid(True, linewidth=0.3)
        return _svg(fig)
