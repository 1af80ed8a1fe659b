"""The event file writer: one line a ``write``, and what happens when writing fails.

Every line goes to the kernel in one ``write`` on an ``O_APPEND`` descriptor, so
a killed process loses at most the line in flight and concurrent writers never
interleave within a line.

When a write fails (``ENOSPC``, ``EIO``, ``EFBIG``, ``EROFS``: any ``OSError``)
nothing is raised to whoever recorded the event. The line is kept in memory, in
order, and written before the next line once writing works again (every later
write, and :meth:`LineWriter.close`, retries). A line the kernel took only part
of is cut back (``ftruncate`` to where it began) before anything else is
written, so the file never holds a torn line in its middle. Past
:data:`MAX_PENDING_EVENTS` lines or :data:`MAX_PENDING_BYTES` bytes, further
events are dropped and counted; the next line that gets written is followed by
one ``EventsLost`` event naming how many and which ``seq`` range.

The writer is called under its :class:`~pytest_litmus.events.Recorder`'s lock,
which also hands it the ``seq`` of each ``EventsLost`` line (:attr:`LineWriter.next_seq`).
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from pytest_litmus.atomicfile import make_dirs, share_fd
from pytest_litmus.errors import EventsNotWritten
from pytest_litmus.eventtypes import EventType

__all__ = [
    "MAX_PENDING_BYTES",
    "MAX_PENDING_EVENTS",
    "LineWriter",
    "SeqGaps",
    "WriteFault",
    "parse_event",
    "parse_line",
    "scan_lines",
    "seq_gaps",
]

#: Lines kept in memory while the event file cannot be written ...
MAX_PENDING_EVENTS = 10_000
#: ... and at most this many bytes of them; past either bound, events are dropped (and counted).
MAX_PENDING_BYTES = 8 * 1024 * 1024
#: Event types whose loss fails the test they belong to (see the pytest plugin).
RECORDS = frozenset({EventType.MEASUREMENT, EventType.TEST_OUTCOME})

#: A session directory: its writer's, readable by the station's group (2755 under umask 022).
SESSION_DIR_BITS = stat.S_ISGID | stat.S_IRGRP | stat.S_IXGRP

#: The one call that hands lines to the kernel (a module global, so tests can inject faults here).
_write = os.write


class WriteFault(NamedTuple):
    """Events of a session that are not on disk: still held in memory, or lost for good."""

    path: Path
    #: The last error the file system gave (``[Errno 28] No space left on device``).
    reason: str
    #: Events held in memory, not yet written.
    pending: int
    #: Events dropped for good (counting those still in memory when the file was closed).
    lost: int
    #: The lost ``seq`` numbers as ``(first, last)`` ranges, in order.
    ranges: tuple[tuple[int, int], ...]

    def error(self, session: str) -> EventsNotWritten:
        return EventsNotWritten(session, self.path, self.lost, self.ranges, self.reason)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None else exc.strerror
    return f"{type(exc).__name__}: {exc}"


class _Pending:
    """One line not yet written, with what the fault accounting needs to know of it."""

    __slots__ = ("line", "nodeid", "seq", "type")

    def __init__(self, line: bytes) -> None:
        self.line = line
        event = parse_line(line) or {}
        seq = event.get("seq")
        self.seq: int | None = seq if type(seq) is int else None
        self.type: str | None = str(event.get("type"))
        nodeid = event.get("nodeid")
        self.nodeid: str | None = nodeid if isinstance(nodeid, str) else None


class LineWriter:
    """Appends lines to a session's event file, keeping (and then counting) what cannot be written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            shared = make_dirs(path.parent, SESSION_DIR_BITS)
            self.fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise EventsNotWritten(path.parent.name, path, 0, (), _reason(exc), action="create") from exc
        if shared:  # every member of the station's group may read it, whatever the writer's umask
            share_fd(self.fd, stat.S_IRGRP)
        #: The descriptor while every line so far is on disk; None while lines wait (or once closed).
        self._ready: int | None = self.fd
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        #: Where a partly written line began, if cutting it off failed (done before the next write).
        self._cut_to: int | None = None
        #: The run of events being dropped now: ``[first_seq, last_seq, count]``.
        self._run: list[int] | None = None
        #: Every dropped run and every line lost at close, as ``[first_seq, last_seq, count]``.
        self._lost: list[list[int]] = []
        #: ``nodeid -> [type, ...]``: the test records (:data:`RECORDS`) among the dropped events.
        self._lost_records: dict[str | None, list[str]] = {}
        #: The last write error (None: none yet).
        self.error: OSError | None = None
        #: Gives the ``seq`` of an ``EventsLost`` line (set by the recorder, which numbers events).
        self.next_seq: Callable[[], int] | None = None
        #: The ``session`` of an ``EventsLost`` line.
        self.session: str | None = None

    def write(self, line: bytes) -> None:
        """Append one prebuilt, newline-terminated line; never raises for a file system error.

        The fast path is one ``write``; a failed or short one, and every line
        while earlier ones wait, go through :meth:`_accept`. Nothing once closed.
        """
        fd = self._ready
        if fd is not None:
            try:
                written = _write(fd, line)
            except OSError as exc:
                self._fault(fd, line, 0, exc)
                return
            if written != len(line):  # a short write: the kernel took part of the line
                self._finish(fd, line, written)
        elif self.fd is not None:
            self._accept(self.fd, line)

    # ------------------------------------------------------------------ the slow path

    def _fault(self, fd: int, line: bytes, done: int, exc: OSError) -> None:
        self.error = exc
        if done:
            self._cut_back(fd, done)
        self._ready = None
        self._keep(line)

    def _finish(self, fd: int, line: bytes, done: int) -> None:
        """The rest of a line the kernel took only part of (or the line kept, and the part cut off)."""
        try:
            while done < len(line):
                written = _write(fd, line[done:])
                if written <= 0:
                    raise OSError(0, "the file system accepted no bytes")
                done += written
        except OSError as exc:
            self._fault(fd, line, done, exc)

    def _put(self, fd: int, line: bytes) -> bool:
        """Write a whole line; on failure cut off whatever part of it was written, and say False."""
        done = 0
        try:
            while done < len(line):
                written = _write(fd, line[done:] if done else line)
                if written <= 0:
                    raise OSError(0, "the file system accepted no bytes")
                done += written
        except OSError as exc:
            self.error = exc
            if done:
                self._cut_back(fd, done)
            return False
        return True

    def _cut_back(self, fd: int, done: int) -> None:
        """Cut off the ``done`` bytes of a line that were written (now, or before the next write)."""
        try:
            start = os.lseek(fd, 0, os.SEEK_CUR) - done  # O_APPEND: the offset is the end of our write
            self._cut_to = start
            os.ftruncate(fd, start)
        except OSError:
            return  # tried again before the next line (_drain); the reader skips a torn last line
        self._cut_to = None

    def _drain(self, fd: int) -> bool:
        """Cut off a partial line and write the waiting lines, in order; True once none wait."""
        if self._cut_to is not None:
            try:
                os.ftruncate(fd, self._cut_to)
            except OSError as exc:
                self.error = exc
                return False
            self._cut_to = None
        pending = self._pending
        while pending:
            first = pending[0]
            if not self._put(fd, first.line):
                return False
            pending.popleft()
            self._pending_bytes -= len(first.line)
        return True

    def _accept(self, fd: int, line: bytes) -> None:
        """A new line while earlier ones wait: write them and it, or keep it (or drop it, when full)."""
        if self._drain(fd) and self._put(fd, line):
            self._end_run(fd)
            if not self._pending and self._cut_to is None:
                self._ready = fd  # healthy again: back to the fast path
            return
        self._keep(line)

    def _keep(self, line: bytes) -> None:
        entry = _Pending(line)
        if len(self._pending) >= MAX_PENDING_EVENTS or self._pending_bytes + len(line) > MAX_PENDING_BYTES:
            self._drop(entry)
            return
        self._pending.append(entry)
        self._pending_bytes += len(line)
        if self._run is not None:  # the dropped run lies before this line: its marker follows it
            marker = self._marker()
            self._pending.append(_Pending(marker))
            self._pending_bytes += len(marker)

    def _drop(self, entry: _Pending) -> None:
        seq = entry.seq if entry.seq is not None else (self._run[1] + 1 if self._run else 0)
        if self._run is None:
            self._run = [seq, seq, 0]
            self._lost.append(self._run)
        self._run[1] = seq
        self._run[2] += 1
        if entry.type in RECORDS:
            self._lost_records.setdefault(entry.nodeid, []).append(entry.type)

    def _marker(self) -> bytes:
        """The ``EventsLost`` line for the run being dropped, which it ends."""
        run, self._run = self._run, None
        assert run is not None
        first, last, count = run
        event = {
            "seq": self.next_seq() if self.next_seq is not None else None,
            "ts": time.time(),
            "session": self.session,
            "type": EventType.EVENTS_LOST,
            "count": count,
            "first_seq": first,
            "last_seq": last,
            "reason": _reason(self.error),
        }
        return (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()

    def _end_run(self, fd: int) -> None:
        """After a line is written, the marker of the run dropped before it (kept if it cannot be written)."""
        if self._run is not None:
            marker = self._marker()
            if not self._put(fd, marker):
                self._pending.append(_Pending(marker))
                self._pending_bytes += len(marker)

    # ------------------------------------------------------------------ asking and closing

    def retry(self) -> bool:
        """Try once to write what waits; True if nothing does (nothing once closed)."""
        fd = self.fd
        if fd is None or self._ready is not None:
            return self._ready is not None or not self._pending
        if self._drain(fd):
            self._end_run(fd)  # the marker's seq is the newest: it may follow at once
            if not self._pending and self._cut_to is None:
                self._ready = fd
        return not self._pending

    @property
    def pending(self) -> int:
        """Lines held in memory, not yet written."""
        return len(self._pending)

    @property
    def lost(self) -> int:
        """Events dropped for good so far."""
        return sum(run[2] for run in self._lost)

    def unrecorded(self, nodeid: str | None) -> list[str]:
        """The types of ``nodeid``'s test records (:data:`RECORDS`) that are not on disk, oldest first."""
        found = list(self._lost_records.get(nodeid, ()))
        found += [p.type for p in self._pending if p.nodeid == nodeid and p.type in RECORDS and p.type]
        return found

    def fault(self) -> WriteFault | None:
        """What is not on disk, and why; None when every event so far is."""
        if not self._pending and not self._lost:
            return None
        runs = sorted((run[0], run[1]) for run in self._lost)
        merged: list[tuple[int, int]] = []
        for first, last in runs:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
            else:
                merged.append((first, last))
        return WriteFault(self.path, _reason(self.error), len(self._pending), self.lost, tuple(merged))

    def close(self) -> None:
        """Write what waits if the file system lets us, then sync and close; what still waits is lost."""
        fd = self.fd
        if fd is None:
            return
        try:
            if self._ready is None:
                self.retry()
            self._run = None
            for entry in self._pending:  # never written: lost, with no marker to say so
                self._drop(entry)
                self._run = None  # each its own run: their seqs need not be contiguous
            self._pending.clear()
            self._pending_bytes = 0
        finally:
            self.fd = self._ready = None
            try:
                os.fsync(fd)
            except OSError as exc:  # EIO here: lines the kernel took may not be on disk
                self.error = exc
            finally:
                os.close(fd)


# --------------------------------------------------------------------------- finding what is missing


class SeqGaps(NamedTuple):
    """Events missing from a session file, by ``seq``."""

    #: ``(first, last, count)`` of each ``EventsLost`` event in the file.
    marked: tuple[tuple[int, int, int], ...] = ()
    #: ``(first, last)`` runs of missing ``seq`` numbers that no ``EventsLost`` accounts for.
    unmarked: tuple[tuple[int, int], ...] = ()

    @property
    def lost(self) -> int:
        """How many events are missing, marked or not."""
        return sum(m[2] for m in self.marked) + sum(b - a + 1 for a, b in self.unmarked)

    def describe(self) -> str:
        """``550 events lost (seq 1001-1550); 3 missing without a marker (seq 7-9)``, or ``""``."""
        parts = []
        if self.marked:
            seqs = ", ".join(_span(a, b) for a, b, _ in self.marked)
            count = sum(m[2] for m in self.marked)
            parts.append(f"{count} event{'s' * (count != 1)} lost (EventsLost, seq {seqs})")
        if self.unmarked:
            seqs = ", ".join(_span(a, b) for a, b in self.unmarked)
            count = sum(b - a + 1 for a, b in self.unmarked)
            parts.append(f"{count} event{'s' * (count != 1)} missing without a marker (seq {seqs})")
        return "; ".join(parts)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def seq_gaps(events: Iterable[dict[str, Any]]) -> SeqGaps:
    """Which ``seq`` numbers (1 to the highest) are missing, and which of them ``EventsLost`` events name."""
    present: set[int] = set()
    marked: list[tuple[int, int, int]] = []
    for event in events:
        seq = event.get("seq")
        if type(seq) is int and seq > 0:
            present.add(seq)
        if event.get("type") == EventType.EVENTS_LOST:
            first, last, count = event.get("first_seq"), event.get("last_seq"), event.get("count")
            if type(first) is int and type(last) is int and type(count) is int:
                marked.append((first, last, count))
    missing: list[tuple[int, int]] = []
    previous = 0
    for seq in sorted(present):
        if seq > previous + 1:
            missing.append((previous + 1, seq - 1))
        previous = seq
    unmarked: list[tuple[int, int]] = []
    for first, last in missing:  # take away what the markers cover (intervals: a bad seq in a file costs nothing)
        pieces = [(first, last)]
        for m_first, m_last, _ in marked:
            pieces = [
                piece
                for a, b in pieces
                for piece in ((a, min(b, m_first - 1)), (max(a, m_last + 1), b))
                if piece[0] <= piece[1]
            ]
        unmarked += pieces
    return SeqGaps(tuple(marked), tuple(unmarked))


def scan_lines(path: Path | str, chunk: int = 1 << 20) -> tuple[int, int]:
    """``(complete lines, events that EventsLost lines say were lost)``: reads ``path`` in chunks, parsing only those."""
    lines = lost = 0
    tail = b""
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            block = tail + data
            cut = block.rfind(b"\n") + 1
            complete, tail = block[:cut], block[cut:]
            lines += complete.count(b"\n")
            if b'"EventsLost"' in complete:
                for raw in complete.split(b"\n"):
                    event = parse_line(raw) if b'"EventsLost"' in raw else None
                    if (
                        event is not None
                        and event.get("type") == EventType.EVENTS_LOST
                        and type(event.get("count")) is int
                    ):
                        lost += event["count"]
    return lines, lost


def parse_event(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One event line as ``(event, None)``, or ``(None, what is wrong)`` when it is not a JSON object."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as exc:
        return None, f"not JSON ({getattr(exc, 'msg', exc)})"
    except RecursionError:
        return None, "JSON nested too deeply"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an object"
    return value, None


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One event line as a dict; None if it is not a JSON object (torn, or garbage)."""
    return parse_event(line)[0]
