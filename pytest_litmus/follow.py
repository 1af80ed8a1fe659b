"""Following a session's event file: replay what is there, then deliver what is appended.

Reading never blocks or slows the writer: the file is opened read-only, nothing
is locked, and new lines are found by reading on from the last offset. A line
still being written (no newline yet) is held back until its newline arrives, so
each event is delivered exactly once, in file order.

The standard library has no inotify, so an idle follower polls on a
:class:`~pytest_litmus.backoff.Backoff`: 5 ms after the last new line, doubling
on each empty read up to ``poll`` (0.1 s by default).
A busy file is read as fast as lines come; an idle one costs ten reads a second.

``since`` selects where the replay starts: an ``int`` is a ``seq`` number and
keeps events with a larger ``seq`` (pass the last one you handled to resume
without duplicates); a ``float`` or ``datetime`` is a time and keeps events with
``ts`` at or after it.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pytest_litmus.backoff import Backoff
from pytest_litmus.eventfile import parse_event
from pytest_litmus.processes import holder_alive, pid_alive

__all__ = ["DEFAULT_POLL", "Follower", "Since", "follow", "iter_follow", "parse_event", "pid_alive"]

MIN_POLL = 0.005
DEFAULT_POLL = 0.1

Since = int | float | datetime | None
StopReason = Literal["ended", "timeout", "writer-gone", "stopped"]
Event = dict[str, Any]
#: Says what is wrong with an event (None: nothing); a line whose event it faults is skipped as bad.
Check = Callable[[Event], str | None]


def _matcher(event_type: str | Sequence[str] | None, role: str | None, since: Since) -> Callable[[Event], bool]:
    types = {event_type} if isinstance(event_type, str) else set(event_type) if event_type is not None else None
    if isinstance(since, datetime):
        since = since.timestamp()
    if isinstance(since, bool):
        raise TypeError("since must be a seq number (int), a timestamp (float or datetime), or None")
    seq_after = since if isinstance(since, int) else None
    ts_from = since if isinstance(since, float) else None

    def match(event: Event) -> bool:
        if types is not None and event.get("type") not in types:
            return False
        if role is not None and event.get("role") != role:
            return False
        if seq_after is not None and not _number(event.get("seq", 0)) > seq_after:
            return False
        return ts_from is None or _number(event.get("ts", 0.0)) >= ts_from

    return match


def _number(value: Any) -> float:
    """A ``seq`` or ``ts`` to compare (one of another type never matches a ``since``)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else -float("inf")


class Follower:
    """Matching events of one event file: first those there now, then each one appended.

    Iterate it (or call :meth:`drain` for what is there now). Iteration ends on
    ``SessionEnded`` (with ``stop_at_end``), after ``timeout`` seconds, when the
    ``stop`` event is set, or when the session's writer process on this host is
    gone without ending it; :attr:`stop_reason` says which. Lines that are not
    JSON objects, or whose event ``check`` faults, are skipped and counted
    (:attr:`bad_lines`, the first in :attr:`first_bad`).

    The file is open only while it is needed: an iteration closes it when it ends
    (a ``break`` too; the next iteration reopens it and reads on from the same
    offset), and :meth:`close`, or leaving a ``with`` block, closes it for good.
    Call one of those after :meth:`drain`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        event_type: str | Sequence[str] | None = None,
        role: str | None = None,
        since: Since = None,
        stop_at_end: bool = True,
        timeout: float | None = None,
        poll: float = DEFAULT_POLL,
        stop: threading.Event | None = None,
        check: Check | None = None,
    ) -> None:
        self.path = Path(path)
        self.stop_at_end = stop_at_end
        self.timeout = timeout
        self.poll = max(poll, MIN_POLL)
        self.stop = stop or threading.Event()
        self.stop_reason: StopReason | None = None
        #: Lines that were not JSON objects (skipped).
        self.bad_lines = 0
        #: The first skipped line: (line number, what is wrong).
        self.first_bad: tuple[int, str] | None = None
        self._check = check
        self._lineno = 0
        self._match = _matcher(event_type, role, since)
        self._file: io.FileIO | None = None
        #: Where reading goes on when the file is opened again (after an iteration ended).
        self._offset = 0
        #: Held while the file is opened, read or closed: :meth:`close` may come from another thread.
        self._io = threading.Lock()
        self._closed = False
        self._partial = b""
        #: Events an iteration read but had not handed out when it was left: the next read starts with them.
        self._undelivered: deque[Event] = deque()
        self._writer: tuple[int, str] | None = None

    def _read_lines(self) -> list[bytes]:
        with self._io:
            if self._closed:
                return []
            if self._file is None:
                try:
                    self._file = io.FileIO(self.path, "r")
                except FileNotFoundError:
                    return []
                if self._offset:
                    self._file.seek(self._offset)
            data = self._file.readall()
            self._offset += len(data)
        if not data:
            return []
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a torn line in progress, completed by a later read
        return lines

    def _close_file(self, *, for_good: bool = False) -> None:
        with self._io:
            self._closed = self._closed or for_good
            if self._file is not None:
                self._file.close()
                self._file = None

    def drain(self) -> list[Event]:
        """Matching events appended since the last read (all of them, the first time), after those
        an iteration read but did not get to deliver (it was left by ``break``)."""
        found = list(self._undelivered)
        self._undelivered.clear()
        if self.stop_reason is not None:
            return found
        for raw in self._read_lines():
            self._lineno += 1
            if not raw.strip():
                continue
            event, problem = parse_event(raw)
            if event is not None and self._check is not None:
                problem = self._check(event)
            if problem is not None or event is None:
                self.bad_lines += 1
                self.first_bad = self.first_bad or (self._lineno, problem or "bad line")
                continue
            if event.get("type") == "SessionStarted" and isinstance(event.get("pid"), int):
                self._writer = (event["pid"], str(event.get("host", "")))
            if self._match(event):
                found.append(event)
            if self.stop_at_end and event.get("type") == "SessionEnded":
                self._finish("ended")
                break
        return found

    @property
    def torn(self) -> bool:
        """Whether the file ends in a line without its newline (being written, or cut off by a crash)."""
        return bool(self._partial.strip())

    def _writer_gone(self) -> bool:
        writer = self._writer
        return writer is not None and not holder_alive({"pid": writer[0], "host": writer[1]})

    def _finish(self, reason: StopReason) -> None:
        self.stop_reason = reason
        self._close_file(for_good=True)

    def __iter__(self) -> Iterator[Event]:
        poll = Backoff(first=MIN_POLL, cap=self.poll).start(self.timeout)
        gone = False
        try:
            while True:
                batch = self.drain()
                if batch:
                    waiting = self._undelivered
                    waiting.extend(batch)
                    while waiting:  # each taken before it is handed out: a ``break`` keeps the rest
                        yield waiting.popleft()
                    poll.reset()
                    continue
                if self.stop_reason is not None:
                    return
                if gone:  # the writer died and one more read found nothing new
                    self._finish("writer-gone")
                elif self.stop.is_set():
                    self._finish("stopped")
                elif poll.expired:
                    self._finish("timeout")
                elif self.stop_at_end and poll.at_cap and self._writer_gone():
                    gone = True
                else:
                    poll.sleep(self.stop)
        finally:  # ended, or left by ``break`` or an exception: the descriptor goes now, not at collection
            self._close_file()

    def close(self) -> None:
        """Stop following and close the file; an iteration in progress (another thread's) ends at its next poll."""
        self.stop.set()
        self._close_file(for_good=True)

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Iterate the matching events of an event file, replay then live: ``for e in iter_follow(path): ...``.
iter_follow = Follower


def follow(
    path: str | os.PathLike[str],
    callback: Callable[[Event], object],
    *,
    event_type: str | Sequence[str] | None = None,
    role: str | None = None,
    since: Since = None,
    stop_at_end: bool = True,
    poll: float = DEFAULT_POLL,
) -> Callable[[], None]:
    """Call ``callback`` with each matching event: past ones now, new ones as they are written.

    Past events are delivered in the calling thread before this returns; later
    ones from a background thread, in file order, never two at once. A callback
    that raises becomes a ``SubscriberWarning``. Returns ``unsubscribe()``, which
    stops delivery (safe to call from the callback, and more than once).
    """
    follower = Follower(path, event_type=event_type, role=role, since=since, stop_at_end=stop_at_end, poll=poll)
    for event in follower.drain():
        _deliver(callback, event)
    if follower.stop_reason is not None:
        return follower.close

    def run() -> None:
        for event in follower:
            if follower.stop.is_set():
                return
            _deliver(callback, event)

    thread = threading.Thread(target=run, name=f"litmus-follow-{follower.path.parent.name}", daemon=True)
    thread.start()

    def unsubscribe() -> None:
        follower.close()
        if thread is not threading.current_thread():
            thread.join(timeout=5)

    return unsubscribe


def _deliver(callback: Callable[[Event], object], event: Event) -> None:
    try:
        callback(event)
    except Exception as exc:
        from pytest_litmus.hooks import SubscriberWarning

        warnings.warn(
            SubscriberWarning(f"event subscriber {callback!r} raised {type(exc).__name__}: {exc}"), stacklevel=2
        )
