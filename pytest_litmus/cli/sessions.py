"""``litmus sessions``: the sessions in the data dir, newest first; ``litmus show SESSION``: one in detail.

A session is named by its id or a unique prefix of it: a plain name, checked
before any file is touched (no path separators, ``..``, NUL or control
characters, at most 255 characters), and only ever compared with the names
found in ``sessions/``. Exit codes: 0 done; 1 no such session, an ambiguous
prefix, or another error; 2 usage (a bad SESSION argument), or a damaged or
unreadable event file: what can be read is printed, then one line on stderr
names the file and its first bad line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_litmus.cli._args import count
from pytest_litmus.cli._output import format_duration, format_table
from pytest_litmus.cli._read import first_event, good_event, read_log
from pytest_litmus.errors import CorruptFile, InvalidName, SessionNotFound
from pytest_litmus.eventfile import scan_lines
from pytest_litmus.events import EVENTS_FILE, SESSIONS_DIR, SessionLog
from pytest_litmus.processes import holder_alive, identity
from pytest_litmus.sessionfind import session_dirs, sessions_of_unit
from pytest_litmus.settings import resolve_data_dir

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

#: Bytes read from the end of an event file to find ``SessionEnded`` without reading it all.
TAIL_BYTES = 64 * 1024
#: The longest session id or prefix accepted (NAME_MAX on Linux).
MAX_SESSION_ID = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def check_session_id(ref: str) -> str:
    """``ref`` if it can name a session directory (an id or prefix), else :class:`InvalidName`.

    A plain name only: not empty, no path separators, ``.``/``..``, NUL or other
    control characters, at most :data:`MAX_SESSION_ID` characters.
    """
    if not ref:
        raise InvalidName("session id", ref, "empty")
    if len(ref) > MAX_SESSION_ID:
        raise InvalidName("session id", ref, f"longer than {MAX_SESSION_ID} characters")
    found = _UNSAFE.search(ref)
    if found:
        what = "a path separator" if found.group() in "/\\" else "a control character (NUL, newline, ...)"
        raise InvalidName("session id", ref, f"contains {what}; a session id is a plain name")
    if ref.strip(".") == "":
        raise InvalidName("session id", ref, "not a name")
    return ref


def register(subparsers: Any) -> None:
    sessions = subparsers.add_parser("sessions", help="list sessions, newest first", description=__doc__)
    sessions.add_argument("--json", action="store_true", help="print a JSON list")
    sessions.add_argument("--limit", type=count, default=None, metavar="N", help="show the newest N only")
    sessions.add_argument("--dut", metavar="SERIAL", default=None, help="only sessions that tested this unit")
    sessions.set_defaults(func=run_sessions)
    show = subparsers.add_parser("show", help="one session: tests, measurements, instruments", description=__doc__)
    show.add_argument("session", metavar="SESSION", help="session id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=run_show)


# --------------------------------------------------------------------------- finding sessions


def find_session(data_dir: Path, ref: str | None) -> Path:
    """The session directory for an id or unique prefix (None: the newest session).

    ``ref`` is checked (:func:`check_session_id`) before the data dir is read,
    and only ever compared with names listed in ``sessions/``, never joined to a path.
    """
    if ref is not None:
        check_session_id(ref)
    dirs = session_dirs(data_dir)
    if ref is None:
        if not dirs:
            raise SessionNotFound(None, data_dir)
        return max(dirs, key=lambda d: _started_ts(d / EVENTS_FILE))
    exact = [d for d in dirs if d.name == ref]
    found = exact or [d for d in dirs if d.name.startswith(ref)]
    if len(found) != 1:
        raise SessionNotFound(ref, data_dir, sorted(d.name for d in found))
    return found[0]


def _last_events(path: Path) -> tuple[dict[str, Any] | None, int]:
    """The last ``SessionEnded`` in the file's tail (None: not there), and the highest ``seq`` seen there."""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_BYTES))
        lines = fh.read().split(b"\n")[1 if size > TAIL_BYTES else 0 : -1]
    last_seq = 0
    for line in reversed(lines):
        event = good_event(line)
        if event is None:
            continue
        if type(event.get("seq")) is int:
            last_seq = max(last_seq, event["seq"])
        if event.get("type") == "SessionEnded":
            return event, last_seq
    return None, last_seq


def _missing(path: Path, last_seq: int) -> dict[str, int]:
    """How many events the file lacks (``lost``), and how many of them no ``EventsLost`` names (``unmarked``).

    Counted from the lines and the highest ``seq``, without parsing every line.
    """
    lines, marked = scan_lines(path)
    missing = max(0, last_seq - lines)
    return {"lost": max(missing, marked), "unmarked": max(0, missing - marked)}


def _started_ts(path: Path) -> float:
    try:
        first = first_event(path)
        return float(first["ts"]) if first else path.stat().st_mtime
    except OSError:  # unreadable: reading it later says so
        return 0.0


# --------------------------------------------------------------------------- summaries


def count_outcomes(events: list[dict[str, Any]]) -> dict[str, int]:
    """Test outcomes and ``measurements_<outcome>`` counts, as ``SessionEnded`` carries them."""
    counts: Counter[str] = Counter()
    for event in events:
        if event.get("type") == "TestOutcome":
            counts[str(event.get("outcome"))] += 1
        elif event.get("type") == "Measurement":
            counts[f"measurements_{event.get('outcome')}"] += 1
    return dict(counts)


def writer_running(started: dict[str, Any] | None) -> bool:
    """Whether the process that started the session is alive (only knowable on its host)."""
    if not started or started.get("host") != identity()["host"]:
        return False
    return holder_alive({"pid": started.get("pid"), "host": started.get("host")})


def session_row(directory: Path) -> tuple[dict[str, Any], CorruptFile | None]:
    """One line of ``litmus sessions``, and the damage found in the file (None: none seen).

    Read from the file's first line and its end; the whole file only when those
    do not tell (no ``SessionEnded`` with counts, or a bad line among them).
    """
    path = directory / EVENTS_FILE
    started = first_event(path)
    started = started if started and started.get("type") == "SessionStarted" else None
    ended, last_seq = _last_events(path)
    damaged = None
    if started is not None and ended is not None and isinstance(ended.get("counts"), dict):
        counts = ended["counts"]
    else:
        log, damaged = read_log(path)
        started, ended = log.started, log.ended
        counts = ended["counts"] if ended and ended.get("counts") is not None else count_outcomes(log.events)
    start = float(started["ts"]) if started else None
    row = {
        "id": directory.name,
        "station": started.get("station") if started else None,
        "start": start,
        "duration": float(ended["ts"]) - start if ended and start is not None else None,
        "outcome": ended.get("outcome") if ended else "incomplete",
        "running": ended is None and writer_running(started),
        "counts": counts,
        "mock": bool(started.get("mock")) if started else None,
        "dut": started.get("dut") if started else None,
        "host": started.get("host") if started else None,
        "pid": started.get("pid") if started else None,
        "path": str(path),
        **_missing(path, last_seq),
    }
    return row, damaged


def list_sessions(
    data_dir: Path, limit: int | None = None, dut: str | None = None
) -> tuple[list[dict[str, Any]], list[Exception]]:
    """Rows for every session (that tested unit ``dut``), newest first; and what could not be read."""
    rows: list[dict[str, Any]] = []
    problems: list[Exception] = []
    dirs = session_dirs(data_dir) if dut is None else [path.parent for path in sessions_of_unit(data_dir, dut)]
    for directory in dirs:
        try:
            row, damaged = session_row(directory)
        except OSError as exc:  # unreadable, or a directory where the file should be: not listed
            problems.append(exc)
            continue
        rows.append(row)
        if damaged is not None:
            problems.append(damaged)
    rows.sort(key=lambda r: r["start"] or 0.0, reverse=True)
    return (rows[:limit] if limit is not None else rows), problems


def summarize(log: SessionLog) -> dict[str, Any]:
    """What ``litmus show`` prints: session facts, instruments, tests with their measurements."""
    started: dict[str, Any] = log.started or {}
    ended = log.ended
    tests: dict[str, dict[str, Any]] = {}
    loose: list[dict[str, Any]] = []
    instruments: dict[str, dict[str, Any]] = {}
    for event in log.events:
        kind = event.get("type")
        if kind == "TestStarted":
            tests.setdefault(
                str(event.get("nodeid")), {"nodeid": event.get("nodeid"), "outcome": None, "measurements": []}
            )
        elif kind == "TestOutcome":
            test = tests.setdefault(str(event.get("nodeid")), {"nodeid": event.get("nodeid"), "measurements": []})
            test.update(outcome=event.get("outcome"), duration=event.get("duration"), message=event.get("message"))
        elif kind == "Measurement":
            owner = tests.get(str(event.get("nodeid")))
            (owner["measurements"] if owner is not None else loose).append(_measurement(event))
        elif kind == "InstrumentConnected":
            instruments[str(event.get("role"))] = {
                k: event.get(k) for k in ("role", "resource", "driver", "idn", "mock")
            } | {"calls": 0, "errors": 0}
        elif kind == "InstrumentCall" and str(event.get("role")) in instruments:
            entry = instruments[str(event.get("role"))]
            entry["calls"] += 1
            entry["errors"] += "error" in event
    start = started.get("ts")
    gaps = log.gaps()
    return {
        "id": started.get("session") or log.path.parent.name,
        "station": started.get("station"),
        "description": started.get("description"),
        "mock": started.get("mock"),
        "host": started.get("host"),
        "user": started.get("user"),
        "pid": started.get("pid"),
        "argv": started.get("argv"),
        "start": start,
        "duration": ended["ts"] - start if ended and start is not None else None,
        "outcome": ended.get("outcome") if ended else "incomplete",
        "running": ended is None and writer_running(log.started),
        "counts": ended.get("counts") if ended else count_outcomes(log.events),
        "events": len(log.events),
        "torn": log.torn,
        "bad_lines": log.bad_lines,
        "lost": gaps.lost,
        "gaps": gaps.describe(),
        "path": str(log.path),
        "instruments": list(instruments.values()),
        "tests": list(tests.values()),
        "measurements": loose,
    }


def _measurement(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("name", "value", "units", "low", "high", "outcome", "nodeid")}


# --------------------------------------------------------------------------- text


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "-"


def counts_text(counts: dict[str, Any]) -> str:
    tests = [f"{n} {k}" for k, n in counts.items() if not k.startswith("measurements_")]
    measured = [f"{n} {k.removeprefix('measurements_')}" for k, n in counts.items() if k.startswith("measurements_")]
    text = ", ".join(tests) or "no tests"
    return f"{text}; measurements {', '.join(measured)}" if measured else text


def measurement_text(m: dict[str, Any]) -> str:
    """``vout = 3.3012 V  [3.2, 3.4]  passed``"""
    units = f" {m['units']}" if m.get("units") else ""
    if m.get("low") is None and m.get("high") is None:
        limits = "no limits"
    else:
        low = "-inf" if m.get("low") is None else f"{m['low']:g}"
        high = "+inf" if m.get("high") is None else f"{m['high']:g}"
        limits = f"[{low}, {high}]"
    return f"{m.get('name')} = {m.get('value')!r}{units}  {limits}  {m.get('outcome')}"


def outcome_text(row: dict[str, Any]) -> str:
    text = "running" if row["running"] else str(row["outcome"])
    if row.get("lost"):
        text += f", {row['lost']} events lost" + (" (unmarked)" if row.get("unmarked") else "")
    return text


COLUMNS = ("SESSION", "STATION", "STARTED", "DURATION", "OUTCOME", "COUNTS", "MOCK")


def session_table(rows: list[dict[str, Any]]) -> str:
    """``litmus sessions`` as an aligned text table."""
    return format_table(
        COLUMNS,
        (
            (
                r["id"][:8],
                str(r["station"] or "?"),
                when(r["start"]),
                format_duration(r["duration"]),
                outcome_text(r),
                counts_text(r["counts"]),
                "mock" if r["mock"] else "",
            )
            for r in rows
        ),
    )


def print_summary(s: dict[str, Any]) -> None:
    mock = " (mock)" if s["mock"] else ""
    print(f"Session {s['id']}")
    print(f"  station   {s['station']}{mock}" + (f" - {s['description']}" if s["description"] else ""))
    print(f"  started   {when(s['start'])} by {s['user']}@{s['host']} pid {s['pid']}: {' '.join(s['argv'] or [])}")
    if s["outcome"] == "incomplete":
        state = "still running" if s["running"] else "its process is gone or elsewhere"
        print(f"  ended     incomplete: no SessionEnded ({state})")
    else:
        print(f"  ended     {s['outcome']} after {format_duration(s['duration'])}")
    print(f"  counts    {counts_text(s['counts'] or {})}")
    notes = "; ".join(
        note
        for note in (
            "last line torn" if s["torn"] else "",
            f"{s['bad_lines']} unreadable lines skipped" if s["bad_lines"] else "",
        )
        if note
    )
    print(f"  events    {s['events']} in {s['path']}" + (f" ({notes})" if notes else ""))
    if s["gaps"]:
        print(f"  LOST      {s['gaps']}")
    print("\nInstruments" if s["instruments"] else "\nInstruments: none")
    for i in s["instruments"]:
        errors = f", {i['errors']} failed" if i["errors"] else ""
        print(f"  {i['role']:<8} {i['resource']}  {i['idn'] or '(no *IDN?)'}  [{i['calls']} calls{errors}]")
    print(f"\nTests ({len(s['tests'])})" if s["tests"] else "\nTests: none")
    for t in s["tests"]:
        duration = f"  {format_duration(t.get('duration'))}" if t.get("duration") is not None else ""
        print(f"  {str(t.get('outcome') or 'no outcome').upper():<10} {t['nodeid']}{duration}")
        for m in t["measurements"]:
            print(f"      {measurement_text(m)}")
        if t.get("message"):
            print(f"      {str(t['message']).splitlines()[0]}")
    if s["measurements"]:
        print("\nMeasurements outside tests")
        for m in s["measurements"]:
            print(f"  {measurement_text(m)}")


# --------------------------------------------------------------------------- commands


def run_sessions(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    rows, problems = list_sessions(data_dir, args.limit, args.dut)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif rows:
        print(session_table(rows))
    elif not problems:
        tested = f" that tested unit {args.dut!r}" if args.dut is not None else ""
        print(f"no sessions{tested} in {data_dir / SESSIONS_DIR}")
    if problems:  # after the listing: one line, the first problem and how many files had one
        if len(problems) > 1:
            problems[0].add_note(f"and {len(problems) - 1} more damaged or unreadable session file(s)")
        raise problems[0]
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    try:
        check_session_id(args.session)
    except InvalidName as exc:
        print(f"litmus show: error: argument SESSION: {exc}", file=sys.stderr)
        return EXIT_USAGE
    directory = find_session(resolve_data_dir(args.data_dir), args.session)
    log, damaged = read_log(directory / EVENTS_FILE)
    if log.events:
        summary = summarize(log)
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            print_summary(summary)
    if damaged is not None:
        raise damaged
    return EXIT_OK
