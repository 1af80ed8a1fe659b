"""``litmus tail [SESSION]``: follow a session's events as a live log until it ends.

SESSION is an id or a unique prefix (default: the newest session). Tests,
measurements with limits and outcome, instruments, locks and sync points are
shown; instrument calls only with ``--calls``; ``--json`` prints the raw lines.
Reading never blocks or slows the session's writer.

Exit codes: 0 the session ended (or ``--no-follow`` printed it); 1 no such
session or another error; 2 usage, or a damaged or unreadable event file (bad
lines are skipped, then one line on stderr names the file and the first one);
3 stopped before the session ended (``--timeout`` passed, or its process on
this host died without ending it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pytest_litmus.cli._args import seconds, seq
from pytest_litmus.cli._output import format_duration
from pytest_litmus.cli._read import damage, event_problem
from pytest_litmus.cli.sessions import counts_text, find_session, measurement_text
from pytest_litmus.events import EVENTS_FILE
from pytest_litmus.follow import Follower
from pytest_litmus.settings import resolve_data_dir

EXIT_OK = 0
EXIT_NOT_ENDED = 3

Event = dict[str, Any]
_HEAD = ("seq", "ts", "session", "type")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tail", help="follow a session's events live", description=__doc__)
    parser.add_argument("session", nargs="?", metavar="SESSION", help="session id or unique prefix (default: newest)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines")
    parser.add_argument("--calls", action="store_true", help="show instrument calls too")
    parser.add_argument("--since", type=seq, default=None, metavar="SEQ", help="start after event number SEQ")
    parser.add_argument("--timeout", type=seconds, default=None, metavar="S", help="give up after S seconds (exit 3)")
    parser.add_argument("--no-follow", action="store_true", help="print what is there now and stop")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory = find_session(resolve_data_dir(args.data_dir), args.session)
    timeout = 0.0 if args.no_follow else args.timeout
    with Follower(directory / EVENTS_FILE, since=args.since, timeout=timeout, check=event_problem) as follower:
        for event in follower:
            line = json.dumps(event, separators=(",", ":")) if args.json else describe(event, calls=args.calls)
            if line is not None:
                print(line, flush=True)
    damaged = damage(follower)
    if damaged is not None:
        raise damaged
    if follower.stop_reason == "ended" or args.no_follow:
        return EXIT_OK
    why = "the timeout passed" if follower.stop_reason == "timeout" else "its process is gone"
    print(f"litmus tail: session {directory.name} has not ended ({why})", file=sys.stderr)
    return EXIT_NOT_ENDED


# --------------------------------------------------------------------------- one line per event


def _stamp(event: Event) -> str:
    ts = event.get("ts")
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3] if isinstance(ts, (int, float)) else "--:--:--"


def _who(caller: Any) -> str:
    if not isinstance(caller, dict):
        return "?"
    worker = f" (xdist {caller['worker']})" if caller.get("worker") else ""
    return f"pid {caller.get('pid')} {caller.get('user')}@{caller.get('host')}{worker}"


def _call(e: Event) -> str:
    args = ", ".join(repr(a) for a in e.get("args") or [])
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (e.get("kwargs") or {}).items())
    outcome = f"raised {e['error']}" if "error" in e else f"-> {e.get('result')!r}"
    caller = f"  [for {_who(e['caller'])}]" if e.get("caller") else ""
    duration = e.get("duration")
    took = f" ({format_duration(duration)})" if isinstance(duration, (int, float)) else ""
    return f"{e.get('role')}.{e.get('method')}({', '.join(p for p in (args, kwargs) if p)}) {outcome}{took}{caller}"


_FORMATS: dict[str, Callable[[Event], str]] = {
    "SessionStarted": lambda e: (
        f"session {e.get('session')} started: station {e.get('station')}{' (mock)' if e.get('mock') else ''}"
        f" by {e.get('user')}@{e.get('host')} pid {e.get('pid')}"
    ),
    "SessionEnded": lambda e: f"session ended: {e.get('outcome')} ({counts_text(e.get('counts') or {})})",
    "TestStarted": lambda e: f"START    {e.get('nodeid')}",
    "TestOutcome": lambda e: (
        f"{str(e.get('outcome')).upper():<8} {e.get('nodeid')} ({format_duration(e.get('duration', 0))})"
        + (f": {str(e['message']).splitlines()[0]}" if e.get("message") else "")
    ),
    "Measurement": lambda e: f"  measure  {measurement_text(e)}",
    "Observation": lambda e: (
        f"  observe  {e.get('key')} = {e.get('value')!r}" + (f" {e['units']}" if e.get("units") else "")
    ),
    "InstrumentConnected": lambda e: f"{e.get('role')} connected: {e.get('resource')} {e.get('idn') or ''}".rstrip(),
    "InstrumentDisconnected": lambda e: f"{e.get('role')} disconnected",
    "InstrumentConfigure": lambda e: f"{e.get('role')} configure {e.get('method')} {e.get('parameters')}",
    "LockAcquired": lambda e: f"lock acquired: {e.get('role')} {e.get('resource')}",
    "LockReleased": lambda e: f"lock released: {e.get('role')} {e.get('resource')}",
    "SrqWait": lambda e: f"{e.get('role')} SRQ wait: {json.dumps({k: v for k, v in e.items() if k not in _HEAD})}",
    "SyncArrived": lambda e: (
        f"sync {e.get('name')}: {e.get('identity')} arrived ({e.get('arrived')}/{e.get('parties')})"
    ),
    "SyncReleased": lambda e: f"sync {e.get('name')}: released after {format_duration(e.get('waited', 0))}",
    "InstrumentServerStarted": lambda e: (
        f"instrument server {e.get('server')} serving {', '.join(e.get('roles') or [])}"
    ),
    "InstrumentServerStopped": lambda e: f"instrument server {e.get('server')} stopped",
    "InstrumentClientConnected": lambda e: f"server {e.get('server')}: client {_who(e.get('caller'))} connected",
    "InstrumentClientDisconnected": lambda e: (
        f"server {e.get('server')}: client {_who(e.get('caller'))} left ({e.get('calls')} requests)"
    ),
    "InstrumentClientRefused": lambda e: f"server {e.get('server')}: refused {e.get('peer')}: {e.get('reason')}",
    "InstrumentCall": _call,
}


def describe(event: Event, *, calls: bool = False) -> str | None:
    """One readable line for an event (None: an instrument call, unless ``calls``)."""
    kind = str(event.get("type"))
    if kind == "InstrumentCall" and not calls:
        return None
    fmt = _FORMATS.get(kind)
    try:
        text = fmt(event) if fmt else f"{kind} {json.dumps({k: v for k, v in event.items() if k not in _HEAD})}"
    except (TypeError, ValueError, KeyError):  # a field of an unexpected type: show the event as it is
        text = f"{kind} {json.dumps({k: v for k, v in event.items() if k not in _HEAD})}"
    caller = event.get("caller")
    worker = caller.get("worker") if isinstance(caller, dict) else None
    return f"{_stamp(event)} [{worker}] {text}" if worker else f"{_stamp(event)} {text}"
