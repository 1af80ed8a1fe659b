"""One poll schedule: pauses that start short, grow by a factor to a cap, bounded by a deadline.

:class:`Backoff` is the schedule (immutable, shareable); :meth:`Backoff.start`
gives a :class:`Poll`, one wait's state: the deadline, the next pause, and
whether the wait has reached its slowest rate. Lock acquisition, barrier waits,
event-file following and SRQ status polling all wait this way::

    poll = Backoff(first=0.001, cap=0.025, jitter=0.5).start(timeout)
    while not try_once():
        if poll.expired:
            raise ...
        poll.sleep()
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

__all__ = ["Backoff", "Poll"]


class Backoff:
    """Pauses ``first``, ``first * factor``, ... capped at ``cap`` (seconds).

    ``jitter`` (0..1) scales each pause by a random factor in ``[1 - jitter, 1]``,
    so waiters that started together do not poll in step. Read-only by contract
    (a plain class: a dataclass costs start-up time).
    """

    __slots__ = ("cap", "factor", "first", "jitter")

    def __init__(self, first: float = 0.001, factor: float = 2.0, cap: float = 0.05, jitter: float = 0.0) -> None:
        self.first = first
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        if not (0 < first <= cap) or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError(f"need 0 < first <= cap, factor >= 1, 0 <= jitter <= 1: {self!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(first={self.first!r}, factor={self.factor!r}, cap={self.cap!r}, jitter={self.jitter!r})"

    def intervals(self) -> Iterator[float]:
        """The pauses without end (jittered when ``jitter`` is set)."""
        interval = self.first
        while True:
            yield interval * random.uniform(1.0 - self.jitter, 1.0) if self.jitter else interval
            interval = min(self.cap, interval * self.factor)

    def start(self, timeout: float | None = None) -> Poll:
        """A wait on this schedule that gives up ``timeout`` seconds from now (None: never)."""
        return Poll(self, timeout)


class Poll:
    """One wait on a :class:`Backoff`: its deadline and where it is on the ramp."""

    __slots__ = ("deadline", "delay", "schedule", "started")

    def __init__(self, schedule: Backoff, timeout: float | None = None) -> None:
        self.schedule = schedule
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        #: The next pause before jitter and the deadline bound it.
        self.delay = schedule.first

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float | None:
        """Seconds to the deadline (never below 0), or None without one."""
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def at_cap(self) -> bool:
        """Whether the wait has ramped up to its slowest rate (time for costlier checks)."""
        return self.delay >= self.schedule.cap

    def next_pause(self) -> float:
        """The next pause (jittered, cut at the deadline) and advance the ramp."""
        schedule = self.schedule
        pause = self.delay * random.uniform(1.0 - schedule.jitter, 1.0) if schedule.jitter else self.delay
        self.delay = min(schedule.cap, self.delay * schedule.factor)
        if self.deadline is not None:
            pause = min(pause, max(self.deadline - time.monotonic(), 0.0))
        return pause

    def sleep(self, stop: threading.Event | None = None) -> bool:
        """Sleep the next pause; with ``stop``, wake early when it is set and return True."""
        pause = self.next_pause()
        if stop is not None:
            return stop.wait(pause)
        time.sleep(pause)
        return False

    def reset(self) -> None:
        """Back to the first pause (something happened: poll fast again); the deadline stays."""
        self.delay = self.schedule.first
