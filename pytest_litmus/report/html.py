"""A session's record as one self-contained HTML file: no network, no JavaScript.

:func:`render` takes a :class:`~pytest_litmus.records.SessionRecord` and returns
the page: for each unit its serial, part and unit attempt and a verdict banner;
each test with its measurements drawn against their limits (inline SVG, see
:func:`~pytest_litmus.report.plots.bars_svg`) and listed; superseded attempts
folded away and marked; attachments (series plotted, images inlined as data
URIs, other files listed with their size and SHA-256). Every text from the
event file is escaped; attachment paths are followed only inside the session's
``attachments/`` directory, and a file whose SHA-256 differs from its event is
shown as changed, not used.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_litmus.attachments import read_series, resolve
from pytest_litmus.limits import format_number
from pytest_litmus.records import Attachment, Attempt, MeasurementRecord, SessionRecord, TestRecord, UnitRecord

__all__ = ["CSP", "CSS", "INLINE_IMAGE_BYTES", "render"]

#: Images up to this size are inlined; larger ones are listed.
INLINE_IMAGE_BYTES = 4 * 1024 * 1024
#: Images a browser shows from a data URI without running anything (SVG in an <img> runs no script).
_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"})

#: Nothing from the network, no script: images from data URIs, styles inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1000px;padding:1em 2em;
color:#1f2328}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}
.verdict{font-size:1.6em;font-weight:700;padding:.5em .8em;border-radius:6px;margin:.6em 0;color:#fff}
.v-passed{background:#1a7f37}.v-failed{background:#cf222e}.v-other{background:#9a6700}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.4em 0}dl.meta dt{color:#57606a}
dl.meta dd{margin:0;font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:.4em 0;width:100%}th,td{text-align:left;padding:.2em .6em;
border-bottom:1px solid #d0d7de;vertical-align:top}td.num{font-family:ui-monospace,monospace;white-space:nowrap}
.o-passed{color:#1a7f37}.o-failed,.o-error{color:#cf222e;font-weight:600}.o-rerun,.o-other{color:#9a6700}
.test{border:1px solid #d0d7de;border-radius:6px;padding:.2em 1em .8em;margin:1em 0}
.superseded{opacity:.6}details>summary{cursor:default;color:#57606a}
svg{max-width:100%;height:auto}img.attachment{max-width:100%;border:1px solid #d0d7de}
.note{color:#57606a;font-size:.9em}.warn{color:#9a6700}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "-"


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    return None


def _outcome(outcome: str | None) -> str:
    text = outcome or "did not end"
    kind = outcome if outcome in ("passed", "failed", "error", "rerun") else "other"
    return f'<span class="o-{kind}">{_e(text)}</span>'


def _banner(verdict: str) -> str:
    kind = verdict if verdict in ("passed", "failed") else "other"
    return f'<div class="verdict v-{kind}">{_e(verdict.upper())}</div>'


def _meta(rows: Iterable[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v is not None)
    return f'<dl class="meta">{items}</dl>'


# --------------------------------------------------------------------------- measurements


def _value_text(m: MeasurementRecord) -> str:
    return f"{format_number(m.value)}{' ' + m.units if m.units else ''}"


def _bar(m: MeasurementRecord) -> Any:
    """The measurement as a :class:`~pytest_litmus.report.plots.Bar`, or None if it cannot be drawn."""
    from pytest_litmus.report.plots import Bar

    value = _number(m.value)
    if value is None or (m.low is None and m.high is None):
        return None
    limits = m.limits or {}
    return Bar(
        name=m.name,
        value=value,
        low=m.low,
        high=m.high,
        marginal_low=_number(limits.get("marginal_low")),
        marginal_high=_number(limits.get("marginal_high")),
        outcome=m.outcome,
        marginal=m.marginal,
        label=_value_text(m),
    )


def _measurements(measurements: Iterable[MeasurementRecord], title: str | None = None) -> str:
    from pytest_litmus.report.plots import bars_svg

    rows, bars = [], []
    for m in measurements:
        bar = _bar(m)
        if bar is not None:
            bars.append(bar)
        state = "failed" if m.outcome == "failed" else "marginal" if m.marginal else m.outcome
        rows.append(
            f"<tr><td>{_e(m.name)}</td><td class=num>{_e(_value_text(m))}</td>"
            f"<td class=num>{_e(m.limits_text or '-')}</td>"
            f"<td>{_outcome(state) if state != 'marginal' else '<span class=o-other>marginal</span>'}</td>"
            f"<td class=note>{_e(m.where or '')}</td></tr>"
        )
    if not rows:
        return ""
    figure = bars_svg(bars, title) if bars else ""
    head = "<tr><th>measurement</th><th>value</th><th>limits</th><th>outcome</th><th>where</th></tr>"
    return f'{figure}<table class="measurements">{head}{"".join(rows)}</table>'


# --------------------------------------------------------------------------- attachments


def _attachments(record: SessionRecord, attachments: Iterable[Attachment]) -> str:
    from pytest_litmus.report.plots import series_svg

    parts, listed = [], []
    for a in attachments:
        path = resolve(record.directory, a.path)
        data = path.read_bytes() if path is not None else None
        if data is None:
            listed.append((a, "missing"))
            continue
        if a.sha256 is not None and hashlib.sha256(data).hexdigest() != a.sha256:
            listed.append((a, "changed since it was recorded"))
            continue
        series = read_series(path) if a.series and path is not None else None
        mime = (a.mime or "").split(";")[0].strip().lower()
        if series is not None:
            parts.append(series_svg(a.name, series[0], series[1]))
        elif mime in _IMAGES and len(data) <= INLINE_IMAGE_BYTES:
            uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
            parts.append(
                f'<figure><img class="attachment" alt="{_e(a.name)}" src="{uri}"><figcaption>{_e(a.name)}</figcaption></figure>'
            )
        else:
            listed.append((a, ""))
    if listed:
        rows = "".join(
            f"<tr><td>{_e(a.name)}</td><td>{_e(a.mime)}</td><td class=num>{_e(a.size)}</td>"
            f"<td class=num>{_e(a.path)}</td><td class=num>{_e((a.sha256 or '')[:16])}</td>"
            f"<td class=warn>{_e(problem)}</td></tr>"
            for a, problem in listed
        )
        head = "<tr><th>attachment</th><th>type</th><th>bytes</th><th>file</th><th>sha256</th><th></th></tr>"
        parts.append(f"<table>{head}{rows}</table>")
    return f"<h3>Attachments</h3>{''.join(parts)}" if parts else ""


# --------------------------------------------------------------------------- tests and units


def _attempt(record: SessionRecord, attempt: Attempt, earlier: bool) -> str:
    body = _measurements(attempt.measurements) + _attachments(record, attempt.attachments)
    message = f'<pre class="note">{_e(attempt.message)}</pre>' if attempt.message else ""
    if not earlier:
        return message + body
    return (
        f'<details class="superseded"><summary>attempt {attempt.attempt}: {_outcome(attempt.outcome)} '
        f"(superseded, not counted)</summary>{message}{body}</details>"
    )


def _test(record: SessionRecord, test: TestRecord) -> str:
    duration = f", {test.duration:.3g} s" if test.duration is not None else ""
    tries = f", attempt {test.final.attempt}" if test.final.attempt > 1 or test.earlier else ""
    earlier = "".join(_attempt(record, a, True) for a in test.earlier)
    return (
        f'<section class="test"><h3>{_e(test.nodeid)}: {_outcome(test.outcome)}{_e(duration)}{_e(tries)}</h3>'
        f"{_attempt(record, test.final, False)}{earlier}</section>"
    )


def _unit(record: SessionRecord, unit: UnitRecord) -> str:
    failed = unit.failed
    summary = (
        f"<p>{len(failed)} measurement{'s' * (len(failed) != 1)} out of limits: "
        f"{_e(', '.join(m.name for m in failed))}</p>"
        if failed
        else ""
    )
    loose = _measurements(unit.measurements, "outside any test") + _attachments(record, unit.attachments)
    return (
        f"<h2>Unit {_e(unit.dut if unit.dut is not None else '(no serial)')}</h2>"
        + _banner(unit.verdict)
        + _meta([("serial", unit.dut), ("part", unit.part), ("unit attempt", unit.unit_attempt), ("slot", unit.slot)])
        + summary
        + loose
        + "".join(_test(record, t) for t in unit.tests)
    )


def render(record: SessionRecord) -> str:
    """The HTML page of ``record`` (raises ``ReportUnavailable`` without matplotlib)."""
    from pytest_litmus.report.plots import require

    require()
    units = "".join(_unit(record, u) for u in record.units)
    title = f"{record.station or 'station'}: {', '.join(u.dut or '(no serial)' for u in record.units)}"
    warnings = []
    if record.lost or record.bad_lines or record.torn:
        warnings.append(
            f"the event file is not whole: {record.lost} events lost, {record.bad_lines} unreadable lines"
            f"{', a torn last line' if record.torn else ''}"
        )
    meta = _meta(
        [
            ("session", record.id),
            ("station", record.station),
            ("host", record.host),
            ("user", record.user),
            ("started", _time(record.start)),
            ("ended", _time(record.end)),
            ("session outcome", record.outcome),
            ("mock", "yes" if record.mock else None),
            ("limits file", record.limits_file),
            ("limits sha256", record.limits_sha256),
            ("event file", Path(record.path).name),
        ]
    )
    notes = "".join(f'<p class="warn">{_e(w)}</p>' for w in warnings)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>{meta}{notes}{units}"
        '<p class="note">pytest-litmus report</p></body></html>\n'
    )
