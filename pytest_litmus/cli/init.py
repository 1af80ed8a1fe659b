"""``litmus init STATION``: a first project that runs, in an empty folder.

Writes ``litmus.yaml``, ``stations/STATION.yaml``, its simulation
``stations/sims/STATION.yaml`` and ``tests/test_STATION.py``, after which
``pytest --station STATION --mock`` passes. Existing files are never
overwritten: they are listed, and nothing is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from pytest_litmus.config import check_station_id
from pytest_litmus.errors import StationConfigError

EXIT_OK = 0
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "init",
        help="write a first project for STATION: litmus.yaml, the station file, its simulation, one test",
        description=(
            "Write litmus.yaml, stations/STATION.yaml, stations/sims/STATION.yaml and tests/test_STATION.py "
            "into DIR (default: the current folder). Then `pytest --station STATION --mock` passes. "
            "Existing files are never overwritten."
        ),
    )
    parser.add_argument("station", metavar="STATION", help="station id: letters, digits, '.', '_', '-'")
    parser.add_argument("--dir", default=".", metavar="DIR", help="project folder (default: the current folder)")
    parser.set_defaults(func=run)


def plan(station: str, root: Path) -> dict[Path, str]:
    """What ``init`` writes for ``station`` under ``root``: path -> text."""
    check_station_id(station, "STATION")
    module = re.sub(r"\W", "_", station)
    templates = files("pytest_litmus.templates")

    def render(name: str) -> str:
        return Template(templates.joinpath(name).read_text(encoding="utf-8")).substitute(station=station)

    return {
        root / "litmus.yaml": render("litmus.yaml.tmpl"),
        root / "stations" / f"{station}.yaml": render("station.yaml.tmpl"),
        root / "stations" / "sims" / f"{station}.yaml": render("sim.yaml.tmpl"),
        root / "tests" / f"test_{module}.py": render("test_station.py.tmpl"),
    }


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        print(f"litmus init: error: --dir {args.dir}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        writes = plan(args.station, root)
    except StationConfigError as exc:
        print(f"litmus init: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    existing = [path for path in writes if path.exists()]
    if existing:
        names = ", ".join(str(p) for p in existing)
        print(
            f"litmus init: error: {names} already exist(s); nothing was written (remove or rename them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for path, text in writes.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:  # "x": never replace a file made meanwhile
            handle.write(text)
        print(f"wrote {path}")
    print(f"next: pytest --station {args.station} --mock")
    return EXIT_OK
