"""``litmus locks``: who holds which instrument; ``litmus locks release RESOURCE`` frees one.

The locks listed are where the ``locks`` setting says (``--locks``, ``$LITMUS_LOCKS``,
``locks:`` in ``litmus.yaml``): host lock files in the data dir, or a PostgreSQL server.

Exit codes: 0 done; 1 refused (the holder is alive: use ``--force``; another
user's live lock: only that user or root may force it; a permission problem) or
another error; 2 usage (a RESOURCE that is a path, has a NUL byte, is overlong),
or a damaged or unreadable holder record (after the listing, one line on
stderr names it); 3 no such lock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_litmus.cli._args import count, positive_seconds
from pytest_litmus.cli._output import format_duration, format_table
from pytest_litmus.errors import AccessDenied, InvalidName, LitmusError, ReleaseRefused, ResourceInUse
from pytest_litmus.locks import (
    LockBackend,
    LockState,
    NoSuchLock,
    ReleaseResult,
    check_lock_name,
    damaged_records,
    list_locks,
    release_lock,
)
from pytest_litmus.processes import current_user
from pytest_litmus.settings import resolve_data_dir, resolve_setting

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_SUCH_LOCK = 3

COLUMNS = ("RESOURCE", "STATE", "PID", "USER@HOST", "SESSION", "STATION/ROLE", "TEST", "HELD FOR")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("locks", help="list instrument locks; release one", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON (one object per refresh with --watch)")
    parser.add_argument("--watch", action="store_true", help="refresh the list until interrupted")
    parser.add_argument(
        "--interval", type=positive_seconds, default=1.0, metavar="S", help="seconds between refreshes (1)"
    )
    parser.add_argument("--count", type=count, default=None, metavar="N", help="with --watch: stop after N refreshes")
    parser.add_argument(
        "--locks",
        metavar="URL",
        default=None,
        help="the lock server's postgresql:// URL, or host (default: the locks setting)",
    )
    parser.set_defaults(func=run_list)
    sub = parser.add_subparsers(dest="locks_command", metavar="ACTION")
    release = sub.add_parser("release", help="free a lock whose holder is gone (or any, with --force)")
    release.add_argument("resource", metavar="RESOURCE", help="VISA address (or lock key) as listed")
    release.add_argument("--force", action="store_true", help="break the lock even if its holder is alive")
    release.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    release.add_argument("--locks", metavar="URL", default=argparse.SUPPRESS, help="as for litmus locks")
    release.set_defaults(func=run_release)


def _data_dir(args: argparse.Namespace) -> Path:
    return resolve_data_dir(args.data_dir)


def _server(args: argparse.Namespace) -> LockBackend | None:
    """The PostgreSQL backend when the ``locks`` setting is a URL; None for host locks."""
    from pytest_litmus.config import find_project_config

    locks = resolve_setting("locks", (getattr(args, "locks", None), "--locks"), project=find_project_config(None))
    if locks.value == "host":
        return None
    from pytest_litmus.locks import PostgresBackend

    return PostgresBackend(locks.value)


# --------------------------------------------------------------------------- listing


def run_list(args: argparse.Namespace) -> int:
    server = _server(args)
    if server is not None:
        try:
            return _watch(lambda stamp: _show_server(server, args.json, stamp=stamp), args)
        finally:
            server.close()
    data_dir = _data_dir(args)
    if not args.watch:
        _show(data_dir, args.json)
        damaged = damaged_records(data_dir)
        if damaged:  # after the listing, which skipped them: one line, exit 2
            if len(damaged) > 1:
                damaged[0].add_note(f"and {len(damaged) - 1} more damaged holder record(s)")
            raise damaged[0]
        return EXIT_OK
    return _watch(lambda stamp: _show(data_dir, args.json, stamp=stamp), args)


def _watch(show: Callable[[bool], None], args: argparse.Namespace) -> int:
    """Show once, or with ``--watch`` every ``--interval`` seconds (``--count`` times) until interrupted."""
    if not args.watch:
        show(False)
        return EXIT_OK
    shown = 0
    try:
        while args.count is None or shown < args.count:
            if shown:
                time.sleep(args.interval)
            if not args.json and shown:
                print()
            show(True)
            shown += 1
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _show_server(server: LockBackend, as_json: bool, *, stamp: bool = False) -> None:
    """The locks held on a lock server (stale rows shown once, then deleted)."""
    states = server.list()
    where = str(getattr(server, "shown", server))
    if as_json:
        print(
            json.dumps({"locks_server": where, "time": _now(), "locks": [s.to_dict() for s in states]}, sort_keys=True)
        )
        return
    if stamp:
        print(f"# {_now()}  {where}")
    print(lock_table(states) if states else f"no locks on {where}", flush=True)


def _show(data_dir: Path, as_json: bool, *, stamp: bool = False) -> None:
    states = list_locks(data_dir)
    if as_json:
        doc = {"data_dir": str(data_dir), "time": _now(), "locks": [s.to_dict() for s in states]}
        print(json.dumps(doc, sort_keys=True), flush=True)
        return
    if stamp:
        print(f"# {_now()}  {data_dir / 'locks'}")
    print(lock_table(states) if states else f"no locks in {data_dir / 'locks'}", flush=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rows(states: list[LockState]) -> Iterator[tuple[str, ...]]:
    """One row per holder; a lock nobody holds gets one row of its own."""
    for state in states:
        for holder in state.holders or [{}]:
            yield _row(state, holder)


def _row(state: LockState, holder: dict[str, Any]) -> tuple[str, ...]:
    label = state.state if state.state != "held" or not holder else f"held {holder.get('mode', '')}".strip()
    who = f"{holder.get('user', '?')}@{holder.get('host', '?')}" if holder else "-"
    where = f"{holder.get('station') or '-'}/{holder.get('role') or '-'}" if holder else "-"
    return (
        state.resource,
        label,
        str(holder.get("pid", "-")),
        who,
        str(holder.get("session") or "-"),
        where,
        str(holder.get("nodeid") or "-"),
        format_duration(state.held_for),
    )


def lock_table(states: list[LockState]) -> str:
    """The lock list as an aligned text table."""
    return format_table(COLUMNS, _rows(states))


# --------------------------------------------------------------------------- releasing


def run_release(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    try:  # before the data dir is even resolved: no file operation sees a bad name
        check_lock_name(args.resource)
    except InvalidName as exc:
        return _fail(as_json, EXIT_USAGE, "usage", f"argument RESOURCE: {exc}", [])
    try:
        server = _server(args)
        if server is None:
            result = release_lock(_data_dir(args), args.resource, force=args.force)
        else:
            try:
                result = server.force_release(args.resource, only_stale=not args.force)
            finally:
                server.close()
    except NoSuchLock as exc:
        return _fail(as_json, EXIT_NO_SUCH_LOCK, "no_such_lock", str(exc), [])
    except ResourceInUse as exc:
        holders = exc.holder.get("holders") or ([exc.holder] if exc.holder else [])
        message = f"{exc}; it is alive, so the lock was not released ({_force_hint(holders)})"
        return _fail(as_json, EXIT_REFUSED, "holder_alive", message, holders)
    except ReleaseRefused as exc:
        return _fail(as_json, EXIT_REFUSED, "not_permitted", str(exc), [exc.holder] if exc.holder else [])
    except AccessDenied as exc:
        return _fail(as_json, EXIT_REFUSED, "permission_denied", str(exc), [])
    except LitmusError as exc:
        return _fail(as_json, EXIT_REFUSED, "error", str(exc), [])
    if as_json:
        print(json.dumps({"ok": True, **result.to_dict()}, sort_keys=True))
    else:
        print(_describe(result))
    return EXIT_OK


def _force_hint(holders: list[Any]) -> str:
    """``use --force to break it``, or who may, when the holders run as another user."""
    me = current_user()
    others = sorted({str(h.get("user")) for h in holders if h.get("user") and h.get("user") != me})
    if not others or getattr(os, "geteuid", lambda: -1)() == 0:
        return "use --force to break it"
    return f"only {', '.join(others)} or root may break it with --force"


def _describe(result: ReleaseResult) -> str:
    named = (f"pid {h.get('pid', '?')} ({h.get('user', '?')}@{h.get('host', '?')})" for h in result.holders)
    pids = ", ".join(dict.fromkeys(named))  # shared holders of one process once
    if result.action == "broken":
        ended = sorted({str(h["backend_pid"]) for h in result.holders if h.get("backend_pid") is not None})
        server = f"; its lock server session ({', '.join(ended)}) was ended, with every lock it held" if ended else ""
        return f"broke the lock on {result.resource} held by {pids or 'an unknown holder'}{server}"
    if pids:
        return f"released the stale lock on {result.resource} left by {pids}, which is gone"
    return f"removed the lock on {result.resource}; nobody held it"


def _fail(as_json: bool, code: int, error: str, message: str, holders: list[Any]) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": error, "message": message, "holders": holders}, sort_keys=True))
    print(f"litmus locks: {message}", file=sys.stderr)
    return code
