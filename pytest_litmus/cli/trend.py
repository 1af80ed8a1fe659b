"""``litmus trend NAME``: one measurement across the sessions of the data dir, per station.

Prints, per station, the count, mean, both sigmas, the limits, Cpk and Ppk and
how many values were out of limits (counted attempts only). ``-o FILE.html``
writes a page with a histogram and a run chart per station instead (needs
``pytest-litmus[report]``). ``--since`` takes a date (``2025-03-01``), a date
and time, or an age (``7d``, ``12h``, ``30m``). Exit codes: 0 done, 1 no values
of that measurement (or no plotting library for ``-o``), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import write_bytes
from pytest_litmus.settings import resolve_data_dir

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([dhm])$")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0}


def since(text: str) -> float:
    """A start time: an ISO date or date-time (local time unless it says otherwise), or an age ``7d``/``12h``/``30m``."""
    age = _AGE.match(text.strip())
    if age:
        return time.time() - float(age[1]) * _UNIT_SECONDS[age[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise argparse.ArgumentTypeError(
            f"expected a date (2025-03-01), a date and time (2025-03-01T08:00) or an age (7d, 12h, 30m), got {text!r}"
        ) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trend", help="one measurement across sessions: Cpk, Ppk, histogram", description=__doc__
    )
    parser.add_argument("name", metavar="NAME", help="the measurement's name")
    parser.add_argument("--station", metavar="ID", default=None, help="this station's sessions only")
    parser.add_argument("--since", type=since, default=None, metavar="WHEN", help="values from then on")
    parser.add_argument("-o", "--output", metavar="PATH", default=None, help="write an HTML page there")
    parser.set_defaults(func=run_trend)


def run_trend(args: argparse.Namespace) -> int:
    from pytest_litmus.report import trend

    trends = trend.collect(resolve_data_dir(args.data_dir), args.name, station=args.station, since=args.since)
    if args.output is None:
        sys.stdout.write(trend.text(args.name, trends))
        return 0 if trends else 1
    page = trend.render(args.name, trends)
    write_bytes(Path(args.output), page.encode("utf-8"))
    print(f"wrote {args.output}")
    return 0 if trends else 1
