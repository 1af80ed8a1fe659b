"""Finding sessions in a data dir: every session directory, and the sessions that tested a unit.

The unit index (:mod:`pytest_litmus.units`) answers for sessions since it exists;
older ones are found by reading their first events.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

from pytest_litmus.eventfile import parse_line
from pytest_litmus.events import EVENTS_FILE, SESSIONS_DIR
from pytest_litmus.eventtypes import EventType
from pytest_litmus.units import attempts_of, indexed_sessions

__all__ = ["session_dirs", "sessions_of_unit"]

_NAMES_UNIT = frozenset({EventType.SESSION_STARTED, EventType.UNIT_STARTED})


def _timestamp(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return None


def session_dirs(data_dir: Path) -> list[Path]:
    """Session directories that hold an event file (or something by its name, which reading then reports)."""
    root = Path(data_dir) / SESSIONS_DIR
    if not root.is_dir():
        if root.exists():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(root))
        return []
    return [d for d in root.iterdir() if os.path.lexists(d / EVENTS_FILE)]


def sessions_of_unit(data_dir: Path, serial: str) -> list[Path]:
    """The event files in ``data_dir`` of sessions that tested ``serial``, oldest first.

    The unit index (:mod:`pytest_litmus.units`) lists the sessions that tested
    it since the index exists; those whose event file exists are taken without
    reading them. Only sessions that no unit's index lists (written before the
    index, or copied from another data dir) are scanned: such a session tested
    the unit when its ``SessionStarted`` or one of its ``UnitStarted`` events
    names it. Unreadable files are skipped.
    """
    data_dir = Path(data_dir)
    dirs = session_dirs(data_dir)
    listed: dict[str, float] = {}
    for attempt in attempts_of(data_dir, serial):
        listed.setdefault(attempt.session, attempt.ts)
    known = indexed_sessions(data_dir) if len(listed) < len(dirs) else set()
    found: list[tuple[float, str, Path]] = []
    for directory in dirs:
        path = directory / EVENTS_FILE
        if directory.name in listed:
            if path.is_file():
                found.append((listed[directory.name], directory.name, path))
        elif directory.name not in known:
            start = _names_unit(path, serial)
            if start is not None:
                found.append((start, directory.name, path))
    return [path for _, _, path in sorted(found)]


def _names_unit(path: Path, serial: str) -> float | None:
    """When the session of ``path`` started, if it names ``serial`` in ``SessionStarted`` or ``UnitStarted``; else None.

    Parses only the first line and the ``UnitStarted`` lines (JSON escapes or
    not, the serial compares exactly). Unreadable: None.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    lines = data.split(b"\n")
    first = parse_line(lines[0]) or {}
    start = _timestamp(first.get("ts")) if first.get("type") == EventType.SESSION_STARTED else None
    naming = [first] if first.get("type") == EventType.SESSION_STARTED else []
    if b'"UnitStarted"' in data:
        naming += [parse_line(raw) or {} for raw in lines if b'"UnitStarted"' in raw]
    if not any(event.get("dut") == serial and event.get("type") in _NAMES_UNIT for event in naming):
        return None
    return start if start is not None else os.stat(path).st_mtime
