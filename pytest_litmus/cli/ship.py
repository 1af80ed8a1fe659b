"""``litmus ship``: send the data dir's sessions the fleet store does not hold yet.

Sessions go oldest first, each in one transaction, idempotently (a session
already stored is not stored twice; one that grew since is completed).
``--pending`` (or ``--dry-run``) only lists what is pending and why, without
shipping. The store is ``--fleet URL``, else ``LITMUS_FLEET``, else ``fleet:``
in litmus.yaml. Exit codes: 0 nothing left pending; 1 something is left (the
store cannot be reached or is not migrated: the line says which, or it
refused a session); 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_litmus.cli._fleet import add_fleet_option, fleet_url
from pytest_litmus.cli._output import format_table
from pytest_litmus.cli.sessions import when
from pytest_litmus.dburl import redact_url
from pytest_litmus.settings import resolve_data_dir

EXIT_OK = 0
EXIT_PENDING = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ship", help="send sessions not yet in the fleet store", description=__doc__)
    add_fleet_option(parser)
    parser.add_argument(
        "--pending", "--dry-run", dest="dry_run", action="store_true", help="list what is pending; ship nothing"
    )
    parser.set_defaults(func=run_ship)


def run_ship(args: argparse.Namespace) -> int:
    from pytest_litmus.fleet.shipping import pending, ship

    url = fleet_url(args)
    shown = redact_url(url)
    data_dir = resolve_data_dir(args.data_dir)
    if args.dry_run:
        todo = pending(data_dir)
        if todo:
            rows = ((p.session, when(p.path.stat().st_mtime), str(p.size), p.why) for p in todo)
            print(format_table(("SESSION", "WRITTEN", "BYTES", "WHY"), rows))
        print(f"{len(todo)} session{'s' * (len(todo) != 1)} pending for {shown}")
        return EXIT_PENDING if todo else EXIT_OK
    report = ship(url, data_dir)
    events = sum(s.events for s in report.shipped)
    measurements = sum(s.measurements for s in report.shipped)
    stored = [s for s in report.shipped if not s.already]
    print(
        f"shipped {len(stored)} session{'s' * (len(stored) != 1)} to {shown}"
        f" ({events} events, {measurements} measurements)"
        + (f"; {len(report.shipped) - len(stored)} were stored already" if len(stored) < len(report.shipped) else "")
    )
    for session, why in report.failed.items():
        print(f"litmus ship: session {session} refused: {why}", file=sys.stderr)
    if report.error is not None:
        print(f"litmus: error: {report.error}", file=sys.stderr)
    if report.pending:
        print(f"{len(report.pending)} session{'s' * (len(report.pending) != 1)} still pending")
        return EXIT_PENDING
    return EXIT_OK
