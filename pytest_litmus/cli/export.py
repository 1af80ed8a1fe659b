"""``litmus export SESSION --format csv|junit|openhtf|html``: a session's record for other tools.

SESSION is an id or a unique prefix, as for ``litmus show``. ``--dut SERIAL``
keeps one unit of a session that tested several (an OpenHTF record is one unit,
so it needs ``--dut`` then). The output goes to stdout, or replaces ``-o PATH``
atomically (no partial file is left on an error). docs/export.md describes each format.

Exit codes: 0 written; 1 no such session or unit; 2 usage (a bad argument,
``html`` without ``pytest-litmus[report]``, several units for ``openhtf``), an
unwritable ``-o`` path, or a damaged event file: the export of what could be
read is written, then one line on stderr names the file and its first bad line.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from pytest_litmus.atomicfile import write_bytes
from pytest_litmus.cli._read import read_log
from pytest_litmus.cli.sessions import check_session_id, find_session
from pytest_litmus.events import EVENTS_FILE
from pytest_litmus.records import SessionRecord, build_record
from pytest_litmus.settings import resolve_data_dir

EXIT_OK = 0
EXIT_USAGE = 2
FORMATS = ("csv", "junit", "openhtf", "html")
#: Where each format's ``render(record) -> str`` lives.
RENDERERS = {
    "csv": "pytest_litmus.export.csv",
    "junit": "pytest_litmus.export.junit",
    "openhtf": "pytest_litmus.export.openhtf",
    "html": "pytest_litmus.report.html",
}
REPORT_MISSING = "--format html needs pytest-litmus[report]: pip install 'pytest-litmus[report]'"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="a session as CSV, JUnit XML, OpenHTF JSON or HTML", description=__doc__
    )
    parser.add_argument("session", metavar="SESSION", help="session id or a unique prefix of it")
    parser.add_argument("--format", "-f", required=True, choices=FORMATS, help="what to write")
    parser.add_argument("-o", "--output", metavar="PATH", default=None, help="write to PATH (default: stdout)")
    parser.add_argument("--dut", metavar="SERIAL", default=None, help="only the unit with this serial number")
    parser.set_defaults(func=run_export)


def renderer(fmt: str) -> Callable[[SessionRecord], str]:
    """The format's ``render``; ``html`` without the report extra is a usage error."""
    try:
        module = importlib.import_module(RENDERERS[fmt])
        if fmt == "html":
            from pytest_litmus.report.plots import require

            require()  # matplotlib: refused before any session is read
    except ImportError as exc:  # ReportUnavailable is one too
        missing = str(getattr(exc, "missing", None) or exc.name or "")
        if fmt == "html" and missing.split(".")[0] in ("pytest_litmus", "matplotlib"):
            raise _Usage(REPORT_MISSING) from None
        raise
    render: Callable[[SessionRecord], str] = module.render
    return render


class _Usage(Exception):
    """A usage error found after argparse: one line, exit 2."""


def write_output(text: str, path: str | None) -> None:
    """``text`` (UTF-8; a lone surrogate as ``\\udc80``) to ``path``, atomically, or to stdout."""
    data = text.encode("utf-8", "backslashreplace")
    if path is None:
        stream = getattr(sys.stdout, "buffer", None)
        if stream is None:
            sys.stdout.write(data.decode("utf-8"))
        else:
            sys.stdout.flush()
            stream.write(data)
            stream.flush()
        return
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    try:
        write_bytes(path, data)
    except OSError as exc:  # named by the path asked for, not the temporary file beside it
        raise OSError(exc.errno, exc.strerror or str(exc), path) from None


def run_export(args: argparse.Namespace) -> int:
    try:
        check_session_id(args.session)
        render = renderer(args.format)
    except (_Usage, ValueError) as exc:
        print(
            f"litmus export: error: {'argument SESSION: ' if not isinstance(exc, _Usage) else ''}{exc}", file=sys.stderr
        )
        return EXIT_USAGE
    directory = find_session(resolve_data_dir(args.data_dir), args.session)
    log, damaged = read_log(directory / EVENTS_FILE)
    if log.events:
        record = build_record(log)
        if args.dut is not None:
            record = record.for_unit(args.dut)
        write_output(render(record), args.output)
    if damaged is not None:
        raise damaged
    return EXIT_OK


__all__ = ["FORMATS", "register", "renderer", "run_export", "write_output"]
