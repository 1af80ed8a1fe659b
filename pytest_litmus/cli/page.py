"""``litmus page [--station ID] [--port N] [--host ADDR]``: the station page for the operator.

Serves a live view of the station (its instruments and their lock holders, the
session running, a PASS / FAIL banner, the last units and the day's yield) with
a serial field and Start / Stop, on 127.0.0.1 unless ``--host`` says otherwise.
Start runs ``page: {command: ...}`` of ``litmus.yaml`` (default: ``pytest
--station {station} --dut {serial}``) in the directory of ``litmus.yaml``.
Needs ``pip install 'pytest-litmus[page]'``. Stop the page with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_litmus.cli._args import port


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("page", help="serve the station page (live view, Start / Stop)", description=__doc__)
    parser.add_argument("--station", metavar="ID", default=None, help="station id (default: as pytest resolves it)")
    parser.add_argument("--port", type=port, default=8770, metavar="N", help="TCP port (8770; 0: a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", metavar="ADDR", help="address to listen on (127.0.0.1; another: a warning)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pytest_litmus.page import is_loopback, listen, require, serve
    from pytest_litmus.settings import dut_pattern, resolve

    require()
    from pytest_litmus.page.hub import PageHub

    explicit = {"station": (args.station, "--station"), "data_dir": (args.data_dir, "--data-dir")}
    settings = resolve(explicit)
    station = settings.load_station()
    pattern, where = dut_pattern(station, settings.project)
    project = settings.project
    hub = PageHub(
        station,
        data_dir=settings.data_dir.value,
        pattern=pattern,
        pattern_source=where,
        command=project.page_command if project is not None else None,
        cwd=project.path.parent if project is not None else settings.start,
    )
    if not is_loopback(args.host):
        print(
            f"litmus page: warning: listening on {args.host}: anyone who can reach it can start and stop runs "
            f"and answer prompts on station {station.id}",
            file=sys.stderr,
            flush=True,
        )
    sock = listen(args.host, args.port)
    serve(hub, sock, announce=lambda url: print(f"litmus page: {url} (station {station.id})", flush=True))
    return 0
