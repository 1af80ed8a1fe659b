"""One measurement across the sessions of a data dir: its values per station, Cpk and Ppk.

:func:`collect` finds the values (counted attempts only: superseded ones are
left out, as in every verdict), oldest first; :func:`text` prints the table,
:func:`render` the HTML page (histogram with limits and run chart per station).
Values that are not real numbers (``equals`` limits) are counted, not used. The
limits are those of the station's latest value; when they changed over the
values, the page and the text say so. See :mod:`pytest_litmus.report.stats`
for the formulas.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_litmus.events import EVENTS_FILE
from pytest_litmus.limits import format_number
from pytest_litmus.records import read_record
from pytest_litmus.report.stats import Capability, capability
from pytest_litmus.sessionfind import session_dirs

__all__ = ["Point", "StationTrend", "collect", "render", "text"]

SIGMA_NOTE = (
    "Cpk: sigma within = MR-bar / 1.128 (moving range of consecutive values); "
    "Ppk: sigma overall = sample standard deviation (n - 1)."
)


@dataclass(frozen=True)
class Point:
    """One counted value of the measurement."""

    value: float
    ts: float
    outcome: str
    session: str
    dut: str | None
    units: str | None
    low: float | None
    high: float | None


@dataclass
class StationTrend:
    """The values of one station, oldest first, and how many were not numbers."""

    station: str
    points: list[Point] = field(default_factory=list)
    not_numeric: int = 0

    @property
    def limits(self) -> tuple[float | None, float | None]:
        """The limits of the latest value."""
        return (self.points[-1].low, self.points[-1].high) if self.points else (None, None)

    @property
    def limits_changed(self) -> bool:
        return len({(p.low, p.high) for p in self.points}) > 1

    @property
    def units(self) -> str | None:
        return self.points[-1].units if self.points else None

    def capability(self) -> Capability:
        low, high = self.limits
        return capability([p.value for p in self.points], low, high)


def _event_files(data_dir: Path) -> Iterable[Path]:
    return sorted(d / EVENTS_FILE for d in session_dirs(data_dir))


def collect(
    data_dir: Path, name: str, *, station: str | None = None, since: float | None = None
) -> dict[str, StationTrend]:
    """station -> its values of measurement ``name`` (at or after ``since``, a Unix time), oldest first.

    Files that do not mention the name are not parsed; unreadable files are skipped.
    """
    needle = json.dumps(name, ensure_ascii=False).encode()
    found: dict[str, StationTrend] = {}
    for path in _event_files(Path(data_dir)):
        try:
            if needle not in path.read_bytes():
                continue
            record = read_record(path)
        except (OSError, ValueError):
            continue
        where = record.station or "(unknown station)"
        if station is not None and where != station:
            continue
        trend = found.setdefault(where, StationTrend(where))
        for unit in record.units:
            for m in unit.all_measurements(superseded=False):
                if m.name != name or m.ts is None or (since is not None and m.ts < since):
                    continue
                value = m.value
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    trend.not_numeric += 1
                    continue
                trend.points.append(Point(float(value), m.ts, m.outcome, record.id, unit.dut, m.units, m.low, m.high))
    for trend in found.values():
        trend.points.sort(key=lambda p: p.ts)
    return {k: v for k, v in sorted(found.items()) if v.points or v.not_numeric}


def _n(value: float | None, digits: str = ".6g") -> str:
    return "n/a" if value is None else format(value, digits)


def _rows(trends: dict[str, StationTrend]) -> list[list[str]]:
    rows = []
    for trend in trends.values():
        c = trend.capability()
        rows.append(
            [
                trend.station,
                str(c.n),
                _n(c.mean),
                _n(c.sigma_overall),
                _n(c.sigma_within),
                "-" if c.low is None else format_number(c.low),
                "-" if c.high is None else format_number(c.high),
                _n(c.cpk, ".3g"),
                _n(c.ppk, ".3g"),
                str(c.out_of_limits),
            ]
        )
    return rows


HEADER = ["station", "n", "mean", "sigma overall", "sigma within", "low", "high", "Cpk", "Ppk", "out"]


def text(name: str, trends: dict[str, StationTrend]) -> str:
    """The table of ``litmus trend NAME``, then the notes (limits changed, values not numeric, formulas)."""
    if not trends:
        return f"no values of measurement {name!r}\n"
    rows = [HEADER, *_rows(trends)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    units = {t.units for t in trends.values() if t.units}
    head = f"measurement {name}" + (f" ({', '.join(sorted(units))})" if units else "")
    lines.insert(0, head)
    lines += _notes(trends)
    return "\n".join(lines) + "\n"


def _notes(trends: dict[str, StationTrend]) -> list[str]:
    notes = []
    for trend in trends.values():
        if trend.limits_changed:
            notes.append(f"{trend.station}: the limits changed over these values; the latest are used")
        if trend.not_numeric:
            notes.append(f"{trend.station}: {trend.not_numeric} values that are not numbers left out")
    return [*notes, SIGMA_NOTE]


def render(name: str, trends: dict[str, StationTrend]) -> str:
    """The HTML page of ``litmus trend NAME -o FILE`` (raises ``ReportUnavailable`` without matplotlib)."""
    from pytest_litmus.report.html import CSP, CSS
    from pytest_litmus.report.plots import histogram_svg, require, run_chart_svg

    require()
    e = html.escape
    parts = []
    for trend, row in zip(trends.values(), _rows(trends), strict=True):
        low, high = trend.limits
        values = [p.value for p in trend.points]
        cells = "".join(f"<td class=num>{e(c)}</td>" for c in row)
        parts.append(f"<h2>{e(trend.station)}</h2><table><tr>{''.join(f'<th>{e(h)}</th>' for h in HEADER)}</tr>")
        parts.append(f"<tr>{cells}</tr></table>")
        if values:
            label = f"{name} on {trend.station}"
            parts.append(histogram_svg(values, low, high, label))
            parts.append(run_chart_svg(values, [p.outcome for p in trend.points], low, high, label))
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in _notes(trends)) if trends else ""
    body = "".join(parts) or f"<p>no values of measurement {e(name)!s}</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>trend: {e(name)}</title><style>{CSS}</style></head><body>"
        f"<h1>Trend: {e(name)}</h1>{body}{notes}</body></html>\n"
    )
