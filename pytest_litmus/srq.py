"""Waiting for IEEE 488.2 service requests on any VISA backend.

:func:`arm` sends ``*CLS``, ``*ESE n`` and ``*SRE m`` and returns a
:class:`SrqWaiter`; :meth:`SrqWaiter.wait` returns the status byte once the
instrument requests service, or raises :class:`~pytest_litmus.errors.SrqTimeout`.
The mechanism is the best the session supports, probed once by :func:`arm`:

``event``
    ``wait_on_event(service_request)`` on the VISA event queue: no bus traffic.
``read_stb``
    serial poll (``viReadSTB``) with a bounded back-off (:class:`PollSchedule`).
``stb_query``
    ``*STB?`` with the same back-off, for sessions without serial poll (SOCKET).

Unsupported is recognised as ``NotImplementedError`` or ``VisaIOError`` with
``VI_ERROR_NSUP_OPER`` (and the event-specific codes). Every bus transaction
runs under ``bus_lock`` (the instrument's proxy lock), never the whole wait.
No pytest here: the fixture and ``StationConnection.srq`` wrap this module.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from queue import SimpleQueue
from typing import Any, Literal, Protocol

from pytest_litmus.backoff import Backoff
from pytest_litmus.errors import SrqTimeout
from pytest_litmus.eventtypes import EventType

__all__ = [
    "MECHANISMS",
    "Emit",
    "Mechanism",
    "PollSchedule",
    "SrqWaiter",
    "arm",
    "as_completed",
]

Mechanism = Literal["event", "read_stb", "stb_query"]
MECHANISMS: tuple[Mechanism, ...] = ("event", "read_stb", "stb_query")

#: ``emit(event_type, fields)``: how a wait is reported (an ``SrqWait`` event).
Emit = Callable[[str, dict[str, Any]], None]

ESB = 0x20
RQS = 0x40
#: A wait on the VISA event queue is sliced so a cancelled waiter stops within this.
EVENT_SLICE = 0.5


class Resource(Protocol):
    """The part of a pyvisa ``MessageBasedResource`` the waiter uses."""

    resource_name: str

    def write(self, message: str) -> Any: ...
    def query(self, message: str) -> str: ...
    def read_stb(self) -> int: ...
    def enable_event(self, event_type: Any, mechanism: Any) -> None: ...
    def disable_event(self, event_type: Any, mechanism: Any) -> None: ...
    def discard_events(self, event_type: Any, mechanism: Any) -> None: ...
    def wait_on_event(self, in_event_type: Any, timeout: int, capture_timeout: bool = ...) -> Any: ...


class PollSchedule(Backoff):
    """Bounded back-off: first poll at once, then ``first``, ``first * factor``, ... capped at ``cap``.

    The defaults see an operation that ends within a few ms after about as
    long again, and cost 26 polls for a 1 s wait, 20 a second after that.
    (The package's one :class:`~pytest_litmus.backoff.Backoff`, with these defaults.)
    """

    __slots__ = ()


def _unsupported(exc: BaseException) -> bool:
    if isinstance(exc, NotImplementedError):
        return True
    from pyvisa import constants
    from pyvisa.errors import VisaIOError

    codes = {
        constants.StatusCode.error_nonsupported_operation,
        constants.StatusCode.error_invalid_event,
        constants.StatusCode.error_invalid_mechanism,
        constants.StatusCode.error_nonsupported_mechanism,
    }
    return isinstance(exc, VisaIOError) and exc.error_code in codes


class SrqWaiter:
    """An armed instrument; :meth:`wait` returns its status byte on a service request.

    After a request whose status byte has ESB set, ``*ESR?`` is read (and so
    cleared, kept in :attr:`esr`), so the next ``*OPC`` can request service
    again with the same waiter.
    """

    def __init__(
        self,
        resource: Resource,
        mechanism: Mechanism,
        *,
        sre: int,
        bus_lock: AbstractContextManager[Any],
        role: str | None = None,
        emit: Emit | None = None,
        schedule: PollSchedule = PollSchedule(),
    ) -> None:
        self.resource = resource
        self.mechanism: Mechanism = mechanism
        self.sre = sre
        self.role = role
        self.bus_lock = bus_lock
        self.emit = emit
        self.schedule = schedule
        self.status_byte: int | None = None
        self.esr: int | None = None

    @property
    def resource_name(self) -> str:
        return str(getattr(self.resource, "resource_name", self.resource))

    def __repr__(self) -> str:
        return f"<SrqWaiter {self.role or self.resource_name} by {self.mechanism}>"

    def wait(self, timeout: float | None = 10.0) -> int:
        """The status byte once service is requested; ``SrqTimeout`` after ``timeout`` s (None: forever)."""
        return self._wait(timeout, threading.Event())

    def _wait(self, timeout: float | None, cancelled: threading.Event) -> int:
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        polls = 0
        stb: int | None = None
        try:
            if self.mechanism == "event":
                stb = self._wait_event(deadline, cancelled)
            else:
                stb, polls = self._poll(deadline, cancelled)
        except BaseException:
            self._report(start, polls, self.status_byte, "error", timeout)
            raise
        if stb is None:
            if self.mechanism == "event":
                self.status_byte = self._quiet_status_byte()
            self._report(start, polls, self.status_byte, "cancelled" if cancelled.is_set() else "timeout", timeout)
            raise SrqTimeout(self.role, self.resource_name, timeout, self.status_byte, self.mechanism)
        self._report(start, polls, stb, "srq", timeout)
        if stb & ESB:
            with self.bus_lock:
                self.esr = int(float(self.resource.query("*ESR?")))
        return stb

    def close(self) -> None:
        """Stop event delivery to the session (the event mechanism enabled it)."""
        if self.mechanism == "event":
            from pyvisa import constants

            with self.bus_lock:
                self.resource.disable_event(constants.EventType.service_request, constants.EventMechanism.queue)
                self.resource.discard_events(constants.EventType.service_request, constants.EventMechanism.queue)

    # -- mechanisms --------------------------------------------------------------

    def _requested(self, stb: int) -> bool:
        # RQS/MSS, or an enabled summary bit: robust against a serial poll by someone else.
        return bool(stb & RQS or stb & self.sre & ~RQS)

    def _read_status_byte(self) -> int:
        with self.bus_lock:
            if self.mechanism == "stb_query":
                return int(float(self.resource.query("*STB?")))
            return int(self.resource.read_stb())

    def _poll(self, deadline: float | None, cancelled: threading.Event) -> tuple[int | None, int]:
        waiting = self.schedule.start(None if deadline is None else deadline - time.monotonic())
        polls = 0
        while True:
            stb = self._read_status_byte()
            polls += 1
            self.status_byte = stb
            if self._requested(stb):
                return stb, polls
            if waiting.expired or waiting.sleep(cancelled):
                return None, polls

    def _wait_event(self, deadline: float | None, cancelled: threading.Event) -> int | None:
        from pyvisa import constants

        while not cancelled.is_set():
            remaining = EVENT_SLICE if deadline is None else min(EVENT_SLICE, deadline - time.monotonic())
            if remaining <= 0:
                return None
            response = self.resource.wait_on_event(
                constants.EventType.service_request, max(1, math.ceil(remaining * 1000)), capture_timeout=True
            )
            if not response.timed_out:
                try:
                    stb = self._read_status_byte()
                except Exception as exc:
                    if not _unsupported(exc):
                        raise
                    with self.bus_lock:
                        stb = int(float(self.resource.query("*STB?")))
                self.status_byte = stb
                return stb
        return None

    def _quiet_status_byte(self) -> int | None:
        """The status byte for a timeout message; ``None`` if it cannot be read."""
        try:
            return self._read_status_byte()
        except Exception:
            return self.status_byte

    def _report(self, start: float, polls: int, stb: int | None, outcome: str, timeout: float | None) -> None:
        if self.emit is None:
            return
        self.emit(
            EventType.SRQ_WAIT,
            {
                "role": self.role,
                "resource": self.resource_name,
                "mechanism": self.mechanism,
                "latency": time.monotonic() - start,
                "polls": polls,
                "status_byte": stb,
                "outcome": outcome,
                "timeout": timeout,
            },
        )


def _probe(resource: Resource, bus_lock: AbstractContextManager[Any]) -> Mechanism:
    """The best mechanism the session supports (enables SRQ events if those work)."""
    from pyvisa import constants

    try:
        with bus_lock:
            resource.enable_event(constants.EventType.service_request, constants.EventMechanism.queue)
        return "event"
    except Exception as exc:
        if not _unsupported(exc):
            raise
    try:
        with bus_lock:
            resource.read_stb()
        return "read_stb"
    except Exception as exc:
        if not _unsupported(exc):
            raise
    return "stb_query"


def arm(
    resource: Resource,
    *,
    ese: int = 1,
    sre: int = 32,
    bus_lock: AbstractContextManager[Any] | None = None,
    role: str | None = None,
    emit: Emit | None = None,
    mechanism: Mechanism | None = None,
    schedule: PollSchedule = PollSchedule(),
) -> SrqWaiter:
    """Arm service requests on ``resource`` (``*CLS``, ``*ESE ese``, ``*SRE sre``) and return a waiter.

    ``mechanism`` forces one (``"event"`` then enables events); by default the
    best supported is probed. ``bus_lock`` guards each bus transaction.
    """
    from pyvisa import constants

    lock: AbstractContextManager[Any] = bus_lock if bus_lock is not None else nullcontext()
    if mechanism is None:
        mechanism = _probe(resource, lock)
    elif mechanism == "event":
        with lock:
            resource.enable_event(constants.EventType.service_request, constants.EventMechanism.queue)
    elif mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {', '.join(MECHANISMS)}, got {mechanism!r}")
    with lock:
        if mechanism == "event":
            resource.discard_events(constants.EventType.service_request, constants.EventMechanism.queue)
        resource.write("*CLS")
        resource.write(f"*ESE {int(ese)}")
        resource.write(f"*SRE {int(sre)}")
    return SrqWaiter(resource, mechanism, sre=sre, bus_lock=lock, role=role, emit=emit, schedule=schedule)


def as_completed(waiters: Iterable[SrqWaiter], timeout: float | None = 10.0) -> Iterator[tuple[SrqWaiter, int]]:
    """Yield ``(waiter, status_byte)`` as each instrument requests service.

    All share one deadline; the first waiter still waiting then raises its
    ``SrqTimeout``. Closing the iterator early cancels the waits still running.
    """
    pending = list(waiters)
    cancelled = threading.Event()
    done: SimpleQueue[tuple[SrqWaiter, Future[int]]] = SimpleQueue()

    def run(waiter: SrqWaiter) -> None:
        future: Future[int] = Future()
        try:
            future.set_result(waiter._wait(timeout, cancelled))
        except BaseException as exc:
            future.set_exception(exc)
        done.put((waiter, future))

    for waiter in pending:
        threading.Thread(target=run, args=(waiter,), name=f"srq-{waiter.resource_name}", daemon=True).start()
    try:
        for _ in range(len(pending)):
            waiter, future = done.get()
            yield waiter, future.result()
    finally:
        cancelled.set()
