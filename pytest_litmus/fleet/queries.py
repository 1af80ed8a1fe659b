"""Questions to the fleet store, answered from its documented views (docs/fleet.md).

Mock sessions (``--mock``: CI, demos) are left out unless ``mock=True``:
they test no unit. Skipped units (nothing measured, no test passed) are not
counted in a yield.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["YieldRow", "trend_values", "unit_attempts", "yields"]


@dataclass(frozen=True)
class YieldRow:
    """One station's units (``None`` station: the total over those listed)."""

    station: str | None
    #: Unit attempts counted (one per unit per session, skipped ones left out).
    tested: int
    passed: int
    failed: int
    #: Errored, terminated or incomplete.
    other: int
    #: Distinct serials among them.
    units: int
    #: Unit attempts that were a unit's first, and how many of those passed.
    first_tested: int
    first_passed: int

    @property
    def yield_(self) -> float | None:
        """Passed over tested."""
        return self.passed / self.tested if self.tested else None

    @property
    def first_pass_yield(self) -> float | None:
        """Units that passed at their first attempt, over first attempts."""
        return self.first_passed / self.first_tested if self.first_tested else None


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


_FILTER = (
    " WHERE (%(mock)s OR NOT mock) AND (%(station)s::text IS NULL OR station = %(station)s)"
    " AND (%(since)s::timestamptz IS NULL OR started >= %(since)s)"
)


def yields(conn: Any, *, station: str | None = None, since: float | None = None, mock: bool = False) -> list[YieldRow]:
    """Per station (then the total, when more than one), from ``litmus.unit_results``."""
    columns = (
        "count(*), count(*) FILTER (WHERE verdict = 'passed'), count(*) FILTER (WHERE verdict = 'failed'),"
        " count(*) FILTER (WHERE verdict NOT IN ('passed', 'failed')), count(DISTINCT dut),"
        " count(*) FILTER (WHERE unit_attempt = 1),"
        " count(*) FILTER (WHERE unit_attempt = 1 AND verdict = 'passed')"
    )
    where = _FILTER + " AND verdict <> 'skipped'"
    params = {"mock": mock, "station": station, "since": _when(since)}
    rows = conn.execute(
        f"SELECT station, {columns} FROM litmus.unit_results{where} GROUP BY station ORDER BY station NULLS LAST",
        params,
    ).fetchall()
    found = [YieldRow(*row) for row in rows]
    if len(found) > 1:
        total = conn.execute(f"SELECT NULL, {columns} FROM litmus.unit_results{where}", params).fetchone()
        found.append(YieldRow(*total))
    return found


def unit_attempts(conn: Any, serial: str, *, mock: bool = True) -> list[dict[str, Any]]:
    """Every session that tested ``serial``, on any station, oldest first; with its failed measurements and tests."""
    rows = conn.execute(
        "SELECT session, unit, started, station, host, unit_attempt, part, slot, verdict FROM litmus.unit_results"
        " WHERE dut = %(serial)s AND (%(mock)s OR NOT mock) ORDER BY started NULLS FIRST, session",
        {"serial": serial, "mock": mock},
    ).fetchall()
    found = []
    for session, unit, started, station, host, unit_attempt, part, slot, verdict in rows:
        failed = conn.execute(
            "SELECT name, value, value_json, units, low, high, limits FROM litmus.measurements"
            " WHERE session = %s AND unit = %s AND outcome = 'failed' AND NOT superseded ORDER BY seq",
            (session, unit),
        ).fetchall()
        tests = conn.execute(
            "SELECT nodeid FROM litmus.tests WHERE session = %s AND unit = %s AND outcome IN ('failed', 'error')"
            " ORDER BY nodeid",
            (session, unit),
        ).fetchall()
        found.append(
            {
                "start": started.timestamp() if started is not None else None,
                "station": station,
                "host": host,
                "session": session,
                "unit_attempt": unit_attempt,
                "part": part,
                "slot": slot,
                "verdict": verdict,
                "failed_measurements": [
                    {"name": n, "value": v if v is not None else vj, "units": u, "low": lo, "high": hi, "limits": lim}
                    for n, v, vj, u, lo, hi, lim in failed
                ],
                "failed_tests": [t for (t,) in tests],
            }
        )
    return found


def trend_values(
    conn: Any, name: str, *, station: str | None = None, since: float | None = None, mock: bool = False
) -> list[tuple[Any, ...]]:
    """The counted values of measurement ``name`` from ``litmus.measurement_values``, oldest first.

    Each ``(station, value, ts, outcome, session, dut, units, low, high)``: the fields of
    ``litmus trend``'s points; ``value`` None when it is not a number.
    """
    rows = conn.execute(
        "SELECT coalesce(v.station, '(unknown station)'), v.value, extract(epoch FROM v.ts)::float8, v.outcome,"
        " v.session, v.dut, v.units, v.low, v.high FROM litmus.measurement_values v"
        " WHERE v.name = %(name)s AND v.ts IS NOT NULL AND (%(mock)s OR NOT v.mock)"
        " AND (%(station)s::text IS NULL OR v.station = %(station)s)"
        " AND (%(since)s::timestamptz IS NULL OR v.ts >= %(since)s)"
        " ORDER BY v.ts, v.session, v.seq",
        {"name": name, "station": station, "since": _when(since), "mock": mock},
    ).fetchall()
    return [tuple(row) for row in rows]
