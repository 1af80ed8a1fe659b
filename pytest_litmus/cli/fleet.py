"""``litmus fleet``: the fleet store, across every station that ships to it (docs/fleet.md).

- ``migrate``: create the store's schema, or bring it to this litmus's version (idempotent);
- ``yield [--station ID] [--since WHEN]``: units tested, passed, failed per station, the yield
  and the first-pass yield;
- ``unit SERIAL``: every attempt of one unit, on any station, oldest first;
- ``trend NAME [--station ID] [--since WHEN] [-o FILE.html]``: one measurement across
  stations, the same table, Cpk, Ppk and plots as ``litmus trend``.

Mock sessions are left out unless ``--mock``. The store is ``--fleet URL``, else
``LITMUS_FLEET``, else ``fleet:`` in litmus.yaml. Exit codes: 0 done; 1 nothing found,
the store unreachable or not migrated; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import write_bytes
from pytest_litmus.cli._fleet import add_fleet_option, fleet_url
from pytest_litmus.cli._output import format_table
from pytest_litmus.cli.sessions import when
from pytest_litmus.cli.trend import since
from pytest_litmus.cli.unit import COLUMNS, failed_text
from pytest_litmus.dburl import redact_url
from pytest_litmus.records import MeasurementRecord

EXIT_OK = 0
EXIT_NONE = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("fleet", help="the fleet store: migrate, yield, unit, trend", description=__doc__)
    sub = parser.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        add_fleet_option(p)
        return p

    action("migrate", "create or upgrade the store's schema").set_defaults(func=run_migrate)
    p = action("yield", "units tested, passed and failed per station; yield and first-pass yield")
    _filters(p)
    p.set_defaults(func=run_yield)
    p = action("unit", "every attempt of one unit, on any station, oldest first")
    p.add_argument("serial", metavar="SERIAL", help="the unit's serial number")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--no-mock", dest="mock", action="store_false", help="leave mock sessions out")
    p.set_defaults(func=run_unit)
    p = action("trend", "one measurement across stations: Cpk, Ppk, histogram")
    p.add_argument("name", metavar="NAME", help="the measurement's name")
    _filters(p)
    p.add_argument("-o", "--output", metavar="PATH", default=None, help="write an HTML page there")
    p.set_defaults(func=run_trend)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--station", metavar="ID", default=None, help="this station only")
    p.add_argument("--since", type=since, default=None, metavar="WHEN", help="from then on (2025-03-01, 7d, 12h)")
    p.add_argument("--mock", action="store_true", help="count mock sessions too")


def _store(args: argparse.Namespace) -> tuple[Any, str]:
    from pytest_litmus.fleet import connect
    from pytest_litmus.fleet.schema import check_version

    url = fleet_url(args)
    conn = connect(url)
    try:
        check_version(conn, redact_url(url))
    except BaseException:
        conn.close()
        raise
    return conn, url


def run_migrate(args: argparse.Namespace) -> int:
    from pytest_litmus.fleet import connect, migrate

    url = fleet_url(args)
    with connect(url) as conn:
        before, after = migrate(conn, redact_url(url))
    shown = redact_url(url)
    print(f"{shown}: schema version {after}" + (" (already)" if before == after else f" (was {before})"))
    return EXIT_OK


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def run_yield(args: argparse.Namespace) -> int:
    from pytest_litmus.fleet.queries import yields

    conn, _ = _store(args)
    with conn:
        rows = yields(conn, station=args.station, since=args.since, mock=args.mock)
    if not rows:
        print("no units tested")
        return EXIT_NONE
    header = ("STATION", "TESTED", "PASSED", "FAILED", "OTHER", "UNITS", "YIELD", "FIRST-PASS")
    print(
        format_table(
            header,
            (
                (
                    r.station if r.station is not None else ("(total)" if r is rows[-1] else "(unknown)"),
                    str(r.tested),
                    str(r.passed),
                    str(r.failed),
                    str(r.other),
                    str(r.units),
                    _percent(r.yield_),
                    _percent(r.first_pass_yield),
                )
                for r in rows
            ),
        )
    )
    return EXIT_OK


def _failed(m: dict[str, Any]) -> str:
    record = MeasurementRecord(
        name=m["name"], value=m["value"], units=m["units"], low=m["low"], high=m["high"], outcome="failed",
        nodeid=None, dut=None, attempt=1, limits=m["limits"], marginal=False, where=None, ts=None, seq=None,
    )  # fmt: skip
    return failed_text(record)


def run_unit(args: argparse.Namespace) -> int:
    from pytest_litmus.fleet.queries import unit_attempts

    if not args.serial:
        print("litmus fleet unit: error: argument SERIAL: empty", file=sys.stderr)
        return EXIT_USAGE
    conn, url = _store(args)
    with conn:
        rows = unit_attempts(conn, args.serial, mock=args.mock)
    for row in rows:
        row["failed"] = [_failed(m) for m in row.pop("failed_measurements")] or row["failed_tests"]
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    elif rows:
        cells = (
            (when(r["start"]), str(r["station"] or "?"), str(r["host"] or "?"), r["session"][:8],
             str(r["unit_attempt"] or "?"), r["verdict"], "; ".join(r["failed"]))
            for r in rows
        )  # fmt: skip
        print(format_table(COLUMNS, cells))
    if not rows:
        print(f"litmus: no session in the fleet store {redact_url(url)} tested unit {args.serial!r}", file=sys.stderr)
        return EXIT_NONE
    return EXIT_OK


def run_trend(args: argparse.Namespace) -> int:
    from pytest_litmus.fleet.queries import trend_values
    from pytest_litmus.report import trend

    conn, _ = _store(args)
    with conn:
        values = trend_values(conn, args.name, station=args.station, since=args.since, mock=args.mock)
    trends: dict[str, trend.StationTrend] = {}
    for station, *point in values:
        found = trends.setdefault(station, trend.StationTrend(station))
        if point[0] is None:
            found.not_numeric += 1
        else:
            found.points.append(trend.Point(*point))
    trends = dict(sorted(trends.items()))
    if args.output is None:
        sys.stdout.write(trend.text(args.name, trends))
        return EXIT_OK if trends else EXIT_NONE
    write_bytes(Path(args.output), trend.render(args.name, trends).encode("utf-8"))
    print(f"wrote {args.output}")
    return EXIT_OK if trends else EXIT_NONE
