"""A session record as CSV: one row per measurement, superseded attempts included and marked.

Columns: :data:`COLUMNS`. Values are exact (``repr`` of a float), limits print
as the terminal prints them (12 significant digits), times are ISO 8601 in UTC.
Cells are written as they are (the ``csv`` module quotes what needs quoting).
"""

from __future__ import annotations

import csv
import io

from pytest_litmus.export._common import iso_time, value_text
from pytest_litmus.limits import format_number
from pytest_litmus.records import MeasurementRecord, SessionRecord

__all__ = ["COLUMNS", "render"]

COLUMNS = (
    "session",
    "dut",
    "test",
    "attempt",
    "superseded",
    "name",
    "value",
    "units",
    "low",
    "high",
    "limits",
    "outcome",
    "marginal",
    "time",
)


def _row(session: str, m: MeasurementRecord) -> tuple[str, ...]:
    return (
        session,
        m.dut or "",
        m.nodeid or "",
        str(m.attempt),
        "true" if m.superseded else "false",
        m.name,
        value_text(m.value),
        m.units or "",
        "" if m.low is None else format_number(m.low),
        "" if m.high is None else format_number(m.high),
        m.limits_text,
        m.outcome,
        "true" if m.marginal else "false",
        iso_time(m.ts),
    )


def render(record: SessionRecord) -> str:
    """The CSV text (header row first, ``\\r\\n`` line ends as RFC 4180 says)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(_row(record.id, m) for unit in record.units for m in unit.all_measurements())
    return out.getvalue()
