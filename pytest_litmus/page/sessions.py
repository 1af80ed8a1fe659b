"""What the page knows of a data dir's sessions: the station's newest, its last units and the day's yield.

:class:`SessionIndex` reads each session's first line (``SessionStarted``) once,
and the end of its file until it has its ``SessionEnded``; an ended session is
never read again, so a refresh over a shift of sessions costs one directory
listing and a ``stat`` per running session.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_litmus.eventfile import parse_line
from pytest_litmus.events import EVENTS_FILE, SESSIONS_DIR
from pytest_litmus.eventtypes import EventType
from pytest_litmus.processes import holder_alive

__all__ = ["SessionEntry", "SessionIndex", "day_yield"]

TAIL_BYTES = 8192
_TOTALS_SKIP = frozenset({"rerun"})


@dataclass
class SessionEntry:
    """One session as the page lists it."""

    id: str
    path: Path
    station: str | None
    dut: str | None
    start: float
    mock: bool
    writer: dict[str, Any] | None
    outcome: str | None = None
    ended: float | None = None
    tests: int | None = None
    mtime: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dut": self.dut,
            "start": self.start,
            "outcome": self.outcome or ("running" if self.running else "incomplete"),
            "mock": self.mock,
        }

    @property
    def running(self) -> bool:
        return self.outcome is None and self.writer is not None and holder_alive(self.writer)


def _first(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as fh:
        line = fh.readline(1 << 20)
    event = parse_line(line)
    return event if event is not None and event.get("type") == EventType.SESSION_STARTED else None


def _ended(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_BYTES))
        lines = fh.read().split(b"\n")
    for raw in reversed(lines[-3:]):
        event = parse_line(raw)
        if event is not None and event.get("type") == EventType.SESSION_ENDED:
            return event
    return None


class SessionIndex:
    """The sessions of one station in a data dir, kept up to date by :meth:`refresh`."""

    def __init__(self, data_dir: Path, station: str) -> None:
        self.root = Path(data_dir) / SESSIONS_DIR
        self.station = station
        self.entries: dict[str, SessionEntry] = {}
        self._foreign: set[str] = set()  # other stations' sessions, and unreadable ones: not read again

    def refresh(self) -> None:
        """Read sessions that are new, and the end of those not ended yet."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for name in names:
            if name in self._foreign:
                continue
            entry = self.entries.get(name)
            if entry is None:
                entry = self._read(name)
                if entry is None:
                    continue
            if entry.outcome is None:
                self._update(entry)

    def _read(self, name: str) -> SessionEntry | None:
        path = self.root / name / EVENTS_FILE
        try:
            first = _first(path)
        except OSError:
            return None  # not there yet (a session being created), or not readable: tried again
        if first is None:
            if path.stat().st_size > 0 and b"\n" in path.read_bytes()[: 1 << 20]:
                self._foreign.add(name)  # a whole first line that is no SessionStarted
            return None
        if first.get("station") != self.station:
            self._foreign.add(name)
            return None
        ts = first.get("ts")
        entry = SessionEntry(
            id=name,
            path=path,
            station=self.station,
            dut=first.get("dut") if isinstance(first.get("dut"), str) else None,
            start=float(ts) if isinstance(ts, (int, float)) else 0.0,
            mock=bool(first.get("mock")),
            writer={"pid": first.get("pid"), "host": first.get("host")},
        )
        self.entries[name] = entry
        return entry

    def _update(self, entry: SessionEntry) -> None:
        try:
            mtime = entry.path.stat().st_mtime
            if mtime == entry.mtime:
                return
            entry.mtime = mtime
            ended = _ended(entry.path)
        except OSError:
            return
        if ended is not None:
            entry.outcome = str(ended.get("outcome"))
            ts = ended.get("ts")
            entry.ended = float(ts) if isinstance(ts, (int, float)) else None
            counts = ended.get("counts")
            if isinstance(counts, dict):
                entry.tests = sum(
                    v for k, v in counts.items() if isinstance(v, int) and k not in _TOTALS_SKIP and "_" not in k
                )

    def newest(self) -> SessionEntry | None:
        """The station's session that started last."""
        return max(self.entries.values(), key=lambda e: (e.start, e.id), default=None)

    def recent(self, count: int = 10) -> list[SessionEntry]:
        """The last ``count`` sessions of the station that tested a unit, newest first."""
        units = [e for e in self.entries.values() if e.dut is not None]
        return sorted(units, key=lambda e: e.start, reverse=True)[:count]

    def expected_tests(self) -> int | None:
        """How many tests the last session that ended ``passed`` or ``failed`` ran (the progress bar's 100 %)."""
        done = [e for e in self.entries.values() if e.outcome in ("passed", "failed") and e.tests]
        return max(done, key=lambda e: e.start).tests if done else None


def day_yield(entries: list[SessionEntry], now: float | None = None) -> dict[str, Any]:
    """Today's units (local time) and how many passed: each unit counted once, by its last ended session."""
    midnight = datetime.fromtimestamp(now if now is not None else time.time()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    last: dict[str, SessionEntry] = {}
    for entry in sorted(entries, key=lambda e: e.start):
        if entry.dut is None or entry.start < midnight.timestamp() or entry.outcome not in ("passed", "failed"):
            continue
        last[entry.dut] = entry
    passed = sum(1 for e in last.values() if e.outcome == "passed")
    return {"units": len(last), "passed": passed, "yield": passed / len(last) if last else None}
