"""``litmus unit SERIAL``: every attempt of one unit across the data dir's sessions, oldest first.

For each session that tested the unit: when, station, host, session, the unit
attempt, the verdict and what failed (measurements with value and limits,
else the failed tests). The sessions come from the unit index; only those
that no unit's index lists are scanned (:func:`~pytest_litmus.sessionfind.sessions_of_unit`).
SERIAL names its index file only percent-encoded (or hashed), never as a path of its own.

Exit codes: 0 listed; 1 no session tested the unit; 2 usage (an empty SERIAL),
or a damaged or unreadable event file among them: the rest is listed, then one
line on stderr names the first problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pytest_litmus.cli._output import format_table
from pytest_litmus.cli._read import read_log
from pytest_litmus.cli.sessions import when
from pytest_litmus.errors import UnitNotFound
from pytest_litmus.records import MeasurementRecord, UnitRecord, build_record
from pytest_litmus.sessionfind import sessions_of_unit
from pytest_litmus.settings import resolve_data_dir

EXIT_OK = 0
EXIT_USAGE = 2
COLUMNS = ("WHEN", "STATION", "HOST", "SESSION", "ATTEMPT", "VERDICT", "FAILED")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("unit", help="every attempt of one unit (DUT), oldest first", description=__doc__)
    parser.add_argument("serial", metavar="SERIAL", help="the unit's serial number (as given to --dut)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run_unit)


def failed_text(m: MeasurementRecord) -> str:
    """``vout=3.6 V [3.2, 3.4]``"""
    units = f" {m.units}" if m.units else ""
    return f"{m.name}={m.value!r}{units}" + (f" {m.limits_text}" if m.limits_text else "")


def _failures(unit: UnitRecord) -> list[str]:
    found = [failed_text(m) for m in unit.failed]
    return found or [t.nodeid for t in unit.tests if t.outcome in ("failed", "error")]


def unit_rows(data_dir: Any, serial: str) -> tuple[list[dict[str, Any]], list[Exception]]:
    """One row per session that tested ``serial``, oldest first; and the files that could not be read."""
    rows: list[dict[str, Any]] = []
    problems: list[Exception] = []
    for path in sessions_of_unit(data_dir, serial):
        try:
            log, damaged = read_log(path)
        except OSError as exc:
            problems.append(exc)
            continue
        if damaged is not None:
            problems.append(damaged)
        record = build_record(log)
        unit = next((u for u in record.units if u.dut == serial), None)
        if unit is None:
            continue
        rows.append(
            {
                "start": record.start,
                "station": record.station,
                "host": record.host,
                "session": record.id,
                "unit_attempt": unit.unit_attempt if unit.unit_attempt is not None else len(rows) + 1,
                "part": unit.part,
                "slot": unit.slot,
                "verdict": unit.verdict,
                "failed": _failures(unit),
                "path": str(path),
            }
        )
    return rows, problems


def run_unit(args: argparse.Namespace) -> int:
    if not args.serial:
        print("litmus unit: error: argument SERIAL: empty", file=sys.stderr)
        return EXIT_USAGE
    data_dir = resolve_data_dir(args.data_dir)
    rows, problems = unit_rows(data_dir, args.serial)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif rows:
        print(
            format_table(
                COLUMNS,
                (
                    (
                        when(r["start"]),
                        str(r["station"] or "?"),
                        str(r["host"] or "?"),
                        r["session"][:8],
                        str(r["unit_attempt"]),
                        r["verdict"],
                        "; ".join(r["failed"]),
                    )
                    for r in rows
                ),
            )
        )
    if problems:
        if len(problems) > 1:
            problems[0].add_note(f"and {len(problems) - 1} more damaged or unreadable session file(s)")
        raise problems[0]
    if not rows:
        raise UnitNotFound(args.serial, data_dir=data_dir)
    return EXIT_OK
