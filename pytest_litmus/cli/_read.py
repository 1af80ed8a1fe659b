"""Reading event files for the ``litmus`` commands, with every damaged line found (not a command: ``_``).

A line that is not a JSON object, or whose fields the commands use have the
wrong type (``"seq": "x"``, ``"ts": null``, ``"pid": "abc"``), is skipped, so one
bad line never hides the rest of a session; the command prints what it can
and then fails with :class:`~pytest_litmus.errors.CorruptFile`, naming the file,
the first bad line and how many were skipped (one line on stderr, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_litmus.errors import CorruptFile
from pytest_litmus.eventfile import parse_event
from pytest_litmus.events import SessionLog
from pytest_litmus.follow import Follower

__all__ = ["damage", "event_problem", "first_event", "good_event", "read_log"]

Event = dict[str, Any]


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_time(value: Any) -> bool:
    if not _is_number(value):
        return False
    try:
        datetime.fromtimestamp(value)
    except (OverflowError, OSError, ValueError):
        return False
    return True


def _is_counts(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_int(n) for n in value.values())


_REQUIRED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seq": (_is_int, "an integer"),
    "ts": (_is_time, "a Unix time"),
    "session": (lambda v: isinstance(v, str), "a string"),
    "type": (lambda v: isinstance(v, str), "a string"),
}
#: Fields the commands compute or format with, wherever they appear (None is allowed).
_OPTIONAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pid": (_is_int, "an integer"),
    "duration": (_is_number, "a number"),
    "waited": (_is_number, "a number"),
    "low": (_is_number, "a finite number"),
    "high": (_is_number, "a finite number"),
    "counts": (_is_counts, "an object of integers"),
    "argv": (lambda v: isinstance(v, list), "a list"),
    "roles": (lambda v: isinstance(v, list), "a list"),
    "args": (lambda v: isinstance(v, list), "a list"),
    "kwargs": (lambda v: isinstance(v, dict), "an object"),
    "caller": (lambda v: isinstance(v, dict), "an object"),
}


def event_problem(event: Event) -> str | None:
    """What is wrong with an event's fields for the commands, or None."""
    for key, (ok, expected) in _REQUIRED.items():
        if key not in event:
            return f"no {key!r} field"
        if not ok(event[key]):
            return f"{key!r} must be {expected}, got {_shown(event[key])}"
    for key, (ok, expected) in _OPTIONAL.items():
        value = event.get(key)
        if value is not None and not ok(value):
            return f"{key!r} must be {expected}, got {_shown(value)}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_log(path: Path) -> tuple[SessionLog, CorruptFile | None]:
    """The session's good events, and the damage found (None: none).

    A torn last line (a writer that died mid-line, or one being written) is not
    damage. An empty file is: a session's file starts with ``SessionStarted``.
    """
    with Follower(path, stop_at_end=False, check=event_problem) as follower:
        events = follower.drain()
    log = SessionLog(path, events, torn=follower.torn, bad_lines=follower.bad_lines)
    return log, damage(follower)


def damage(follower: Follower) -> CorruptFile | None:
    """:class:`CorruptFile` for what a follower skipped (or for an empty file), else None."""
    if follower.first_bad is not None:
        line, problem = follower.first_bad
        return CorruptFile(follower.path, problem, line=line, bad_lines=follower.bad_lines)
    if follower.path.stat().st_size == 0:
        return CorruptFile(follower.path, "empty file: no events (a session's file starts with SessionStarted)")
    return None


def first_event(path: Path) -> Event | None:
    """The first line's event, when it is whole and good (else None: read the whole file to know why)."""
    with path.open("rb") as fh:
        line = fh.readline()
    return good_event(line) if line.endswith(b"\n") else None


def good_event(raw: bytes) -> Event | None:
    """An event line's event when it is a good one, else None."""
    event, problem = parse_event(raw)
    return event if problem is None and event is not None and event_problem(event) is None else None
