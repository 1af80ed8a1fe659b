"""The unit index: every session that tested a unit, and its unit attempt number.

``<data_dir>/units/<key>.jsonl`` holds one line per time a unit was tested:
``{"serial", "attempt", "session", "station", "slot", "ts"}``. A session takes
the next attempt number under a file lock (:mod:`filelock`), so two stations
sharing a data dir never hand out the same number. The key is the serial,
percent-encoded (a long or unusual serial: its SHA-256); each line repeats the
serial, so serials that differ only in case (one file on a case-insensitive
file system) stay apart. A torn or foreign line is skipped, and the next number
is one above the highest seen: a damaged index never repeats an attempt number.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from pytest_litmus.atomicfile import GROUP_FILE_BITS, make_dirs, share_fd

__all__ = ["UnitAttempt", "attempts_of", "indexed_sessions", "next_attempt", "unit_index"]

_MAX_KEY = 200
#: Seconds to wait for another session taking a number for the same unit before giving up.
LOCK_TIMEOUT = 30.0


class UnitAttempt(NamedTuple):
    """One line of a unit's index: the session that tested it, and which attempt that was."""

    serial: str
    attempt: int
    session: str
    station: str | None
    slot: str | None
    ts: float


def unit_index(data_dir: Path, serial: str) -> Path:
    """The index file of ``serial`` under ``data_dir``."""
    key = quote(serial, safe="-_")
    if len(key) > _MAX_KEY or key.startswith("."):
        key = "sha256-" + hashlib.sha256(serial.encode("utf-8", "surrogatepass")).hexdigest()
    return data_dir / "units" / f"sn-{key}.jsonl"


def _parse(line: bytes, serial: str | None) -> UnitAttempt | None:
    """The line's attempt (of ``serial``; None: of any unit), or None when it is torn or foreign."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("serial"), str):
        return None
    if serial is not None and data["serial"] != serial:
        return None
    serial = data["serial"]
    attempt, session, ts = data.get("attempt"), data.get("session"), data.get("ts")
    if type(attempt) is not int or attempt < 1 or not isinstance(session, str) or not isinstance(ts, (int, float)):
        return None
    station, slot = data.get("station"), data.get("slot")
    return UnitAttempt(
        serial,
        attempt,
        session,
        station if isinstance(station, str) else None,
        slot if isinstance(slot, str) else None,
        float(ts),
    )


def _attempts(data: bytes, serial: str | None) -> list[UnitAttempt]:
    """The good lines of an index file (of ``serial``; None: of any serial)."""
    found = (_parse(line, serial) for line in data.splitlines())
    return [a for a in found if a is not None]


def attempts_of(data_dir: Path, serial: str) -> list[UnitAttempt]:
    """Every recorded attempt of ``serial``, oldest first (none: an empty list)."""
    try:
        data = unit_index(data_dir, serial).read_bytes()
    except FileNotFoundError:
        return []
    return _attempts(data, serial)


def indexed_sessions(data_dir: Path) -> set[str]:
    """Every session that any unit's index lists (sessions written since the index exists); none: an empty set.

    A session takes a unit's number before any of its events names the unit:
    a session listed here but not in ``attempts_of(serial)`` did not test ``serial``.
    """
    try:
        files = [p for p in (data_dir / "units").iterdir() if p.name.endswith(".jsonl")]
    except OSError:
        return set()
    sessions: set[str] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        sessions.update(a.session for a in _attempts(data, None))
    return sessions


def next_attempt(data_dir: Path, serial: str, session: str, *, station: str | None, slot: str | None) -> int:
    """Record that ``session`` tests ``serial`` and return its unit attempt number (1, 2, ...).

    Raises :class:`OSError` when the index cannot be written (the caller says
    what that means for the run) and :class:`filelock.Timeout` after
    :data:`LOCK_TIMEOUT` seconds of another process holding the unit's lock.
    """
    from filelock import FileLock

    path = unit_index(data_dir, serial)
    shared = make_dirs(path.parent)
    with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT, mode=0o666 if shared else 0o644):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            if shared:
                share_fd(fd, GROUP_FILE_BITS)
            with os.fdopen(fd, "rb+", closefd=False) as file:
                existing = _attempts(file.read(), serial)
            attempt = max((a.attempt for a in existing), default=0) + 1
            line: dict[str, Any] = {
                "serial": serial,
                "attempt": attempt,
                "session": session,
                "station": station,
                "slot": slot,
                "ts": time.time(),
            }
            data = b"\n" + json.dumps(line, ensure_ascii=False).encode() + b"\n"  # a torn last line stays apart
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        finally:
            os.close(fd)
    return attempt
