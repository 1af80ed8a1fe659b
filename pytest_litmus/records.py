"""A session's event file read into a typed record: session -> units -> tests -> attempts -> measurements.

:func:`read_record` reads an ``events.jsonl``; :func:`build_record` builds the
record from events already read (a :class:`~pytest_litmus.events.SessionLog`).
Exports and reports work from a :class:`SessionRecord`, never from raw events.

- A **unit** is the events of the session that carry one ``dut`` (an event
  without one belongs to the session's ``dut``). A session without a DUT has
  one unit whose ``dut`` is None.
- A **test** is one ``nodeid`` of a unit; each run of it is an :class:`Attempt`
  (``attempt`` 1, 2, ... under pytest-rerunfailures). The last attempt is
  :attr:`TestRecord.final`, the others :attr:`TestRecord.earlier`.
- A measurement or attachment is **superseded** when its attempt ended
  ``rerun`` or is lower than the attempt of the test's last ``TestOutcome``
  (docs/export.md). Verdicts and exports count final attempts only.

Old event files (before ``dut`` and ``attempt``) read fine: no DUT, and an
attempt counted from the test's ``TestStarted`` events (1 when it ran once).
A field of the wrong type reads as missing; an unreadable line was skipped by
the reader (``bad_lines``) and never stops the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_litmus.errors import UnitNotFound
from pytest_litmus.events import SessionLog, read_session
from pytest_litmus.eventtypes import EventType
from pytest_litmus.limits import describe_limits

__all__ = [
    "Attachment",
    "Attempt",
    "MeasurementRecord",
    "SessionRecord",
    "TestRecord",
    "UnitRecord",
    "build_record",
    "read_record",
]

#: Test outcomes that fail a unit.
FAILING = frozenset({"failed", "error"})
#: Test outcomes that show the unit was tested (as opposed to only skipped).
TESTED = frozenset({"passed", "xfailed", "xpassed"})

#: The events that name a unit of a session.

Event = Mapping[str, Any]


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class MeasurementRecord:
    """One ``Measurement`` event, with every field the schema defines (docs/events.md)."""

    name: str
    value: Any
    units: str | None
    #: Effective numeric bounds (None: open side).
    low: float | None
    high: float | None
    #: ``passed`` or ``failed``.
    outcome: str
    nodeid: str | None
    dut: str | None
    attempt: int
    #: The limits used (the schema's dict: low/high/nominal/tolerance/equals/marginal/units/source), or None.
    limits: Mapping[str, Any] | None
    marginal: bool
    #: ``path/to/test_x.py:42`` of the ``measure()`` call, or None.
    where: str | None
    ts: float | None
    seq: int | None
    #: Taken in an attempt that a later one replaced: not counted.
    superseded: bool = False

    @property
    def limits_text(self) -> str:
        """The limits as every litmus output prints them (``[3.2, 3.4]``, ``3.3 ± 1%``); ``""`` without any.

        See :func:`~pytest_litmus.limits.describe_limits`. An event written
        without a limits dict shows its ``low``/``high`` (inclusive).
        """
        if self.limits is None and self.low is None and self.high is None:
            return ""
        text = describe_limits(self.limits or {"low": self.low, "high": self.high})
        return "" if text == describe_limits(None) else text


@dataclass(frozen=True)
class Attachment:
    """One ``Attachment`` event: a file stored under the session directory."""

    name: str
    #: Relative to the session directory.
    path: str
    mime: str | None
    size: int | None
    sha256: str | None
    nodeid: str | None
    dut: str | None
    attempt: int
    #: A numeric series stored as JSON ``{"x": [...] or null, "y": [...]}``.
    series: bool
    ts: float | None
    seq: int | None
    superseded: bool = False


@dataclass(frozen=True)
class Attempt:
    """One run of a test: its outcome (None: it never ended), and what it measured and attached."""

    attempt: int
    outcome: str | None
    duration: float | None
    message: str | None
    #: ``ts`` of its ``TestStarted`` and ``TestOutcome`` (None: not in the file).
    start: float | None
    end: float | None
    measurements: tuple[MeasurementRecord, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    @property
    def superseded(self) -> bool:
        """Whether a later attempt replaced this one (its measurements say so)."""
        return self.outcome == "rerun"


@dataclass(frozen=True)
class TestRecord:
    """One test (``nodeid``) of a unit: its final attempt and those before it."""

    __test__ = False  # not a pytest test class

    nodeid: str
    final: Attempt
    #: Earlier attempts, oldest first (superseded).
    earlier: tuple[Attempt, ...] = ()

    @property
    def outcome(self) -> str | None:
        return self.final.outcome

    @property
    def duration(self) -> float | None:
        return self.final.duration

    @property
    def message(self) -> str | None:
        return self.final.message

    @property
    def measurements(self) -> tuple[MeasurementRecord, ...]:
        """The final attempt's measurements."""
        return self.final.measurements

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt, oldest first."""
        return (*self.earlier, self.final)


@dataclass(frozen=True)
class UnitRecord:
    """The events of one session carrying one ``dut``, and its verdict.

    ``verdict``: ``failed`` (a final attempt failed or errored, or a counted
    measurement failed), else ``errored``/``terminated`` as the session ended,
    else ``incomplete`` (the session or a test never ended), else ``passed``
    (something passed or was measured), else ``skipped``.
    """

    dut: str | None
    part: str | None
    #: The unit's attempt number across sessions (None: not known).
    unit_attempt: int | None
    #: ``main``, or the xdist worker (``gw0``) that tested it (None: not known).
    slot: str | None
    verdict: str
    tests: tuple[TestRecord, ...] = ()
    #: Measurements taken outside any test (session fixtures).
    measurements: tuple[MeasurementRecord, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    def all_measurements(self, superseded: bool = True) -> list[MeasurementRecord]:
        """Every measurement of the unit in event order; without superseded ones if ``superseded`` is False."""
        found = [*self.measurements]
        for test in self.tests:
            for attempt in test.attempts:
                found += attempt.measurements
        found.sort(key=lambda m: m.seq if m.seq is not None else -1)
        return found if superseded else [m for m in found if not m.superseded]

    @property
    def failed(self) -> list[MeasurementRecord]:
        """The counted measurements that failed."""
        return [m for m in self.all_measurements(superseded=False) if m.outcome == "failed"]


@dataclass(frozen=True)
class SessionRecord:
    """A whole session: where and when it ran, how it ended, its units."""

    id: str
    station: str | None
    host: str | None
    user: str | None
    #: ``ts`` of ``SessionStarted`` and ``SessionEnded`` (None: not in the file).
    start: float | None
    end: float | None
    #: ``SessionEnded``'s outcome, or ``incomplete``.
    outcome: str
    mock: bool
    #: The DUT named when the session started (units may name others).
    dut: str | None
    limits_file: str | None
    limits_sha256: str | None
    #: The event file read.
    path: Path
    units: tuple[UnitRecord, ...] = ()
    #: Lines skipped as unreadable, and whether the last one was torn.
    bad_lines: int = 0
    torn: bool = False
    #: Events missing from the file (``EventsLost`` or gaps in ``seq``).
    lost: int = 0
    #: ``SessionStarted`` as written (``versions``, ``argv``, ``cwd``, ...), or empty.
    started: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return self.end - self.start if self.end is not None and self.start is not None else None

    @property
    def measurement_count(self) -> int:
        return sum(len(u.all_measurements()) for u in self.units)

    def unit(self, dut: str | None) -> UnitRecord:
        """The unit for ``dut``; :class:`~pytest_litmus.errors.UnitNotFound` (a ``LookupError``) naming those there are."""
        for unit in self.units:
            if unit.dut == dut:
                return unit
        raise UnitNotFound(dut, session=self.id, units=[u.dut for u in self.units])

    def for_unit(self, dut: str | None) -> SessionRecord:
        """This record with only the unit for ``dut`` (:class:`LookupError` if there is none)."""
        return replace(self, units=(self.unit(dut),))

    @property
    def directory(self) -> Path:
        """The session directory (attachment paths are relative to it)."""
        return self.path.parent


# --------------------------------------------------------------------------- reading


def read_record(path: Path | str) -> SessionRecord:
    """Read an event file into a :class:`SessionRecord` (unreadable lines skipped and counted)."""
    return build_record(read_session(path))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if type(value) is str else str(value)


def _number(value: Any) -> float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 1 else None


class _Builder:
    """Walks the events once, grouping them by unit, test and attempt."""

    def __init__(self, session_dut: str | None) -> None:
        self.session_dut = session_dut
        #: dut -> UnitStarted fields.
        self.unit_info: dict[str | None, Event] = {}
        self.order: dict[str | None, None] = {}  # units in order of appearance
        #: (dut, nodeid) -> attempt -> [TestStarted, TestOutcome, measurements, attachments]
        self.tests: dict[tuple[str | None, str], dict[int, list[Any]]] = {}
        #: (dut, nodeid) -> the attempt of its last TestStarted (for events without ``attempt``).
        self.current: dict[tuple[str | None, str], int] = {}
        #: (dut, nodeid) -> the attempt of its last TestOutcome.
        self.last_outcome: dict[tuple[str | None, str], int] = {}
        self.loose: dict[str | None, list[Any]] = {}

    def dut(self, event: Event) -> str | None:
        dut = _text(event.get("dut"))
        dut = self.session_dut if dut is None else dut
        self.order.setdefault(dut)
        return dut

    def slot(self, key: tuple[str | None, str], attempt: int) -> list[Any]:
        return self.tests.setdefault(key, {}).setdefault(attempt, [None, None, [], []])

    def attempt_of(self, event: Event, key: tuple[str | None, str]) -> int:
        return _count(event.get("attempt")) or self.current.get(key, 1)

    def add(self, event: Event) -> None:
        kind = event.get("type")
        if kind == EventType.MEASUREMENT or kind == EventType.ATTACHMENT:
            self._item(event, kind == EventType.ATTACHMENT)
        elif kind == EventType.TEST_STARTED:
            nodeid = _text(event.get("nodeid"))
            if nodeid is not None:
                key = (self.dut(event), nodeid)
                attempt = _count(event.get("attempt")) or (max(self.tests[key]) + 1 if key in self.tests else 1)
                self.current[key] = attempt
                self.slot(key, attempt)[0] = event
        elif kind == EventType.TEST_OUTCOME:
            nodeid = _text(event.get("nodeid"))
            if nodeid is not None:
                key = (self.dut(event), nodeid)
                attempt = self.attempt_of(event, key)
                self.last_outcome[key] = attempt
                self.slot(key, attempt)[1] = event
        elif kind == EventType.UNIT_STARTED:
            self.unit_info.setdefault(self.dut(event), event)

    def _item(self, event: Event, attachment: bool) -> None:
        dut = self.dut(event)
        nodeid = _text(event.get("nodeid"))
        if nodeid is None:
            self.loose.setdefault(dut, [[], []])[attachment].append((event, 1))
            return
        key = (dut, nodeid)
        attempt = self.attempt_of(event, key)
        self.slot(key, attempt)[2 + attachment].append((event, attempt))


_LIMIT_NUMBERS = ("low", "high", "nominal", "tolerance", "tolerance_percent", "marginal_low", "marginal_high")


def _limits(value: Any) -> dict[str, Any] | None:
    """A limits dict with its fields of the wrong type dropped (a bound that is not a finite number is none)."""
    if not isinstance(value, dict):
        return None
    limits = {k: v for k, v in value.items() if k not in _LIMIT_NUMBERS or _number(v) is not None}
    for key in ("low_inclusive", "high_inclusive"):
        if key in limits and type(limits[key]) is not bool:
            del limits[key]
    return limits


def _measurement(event: Event, dut: str | None, attempt: int, superseded: bool) -> MeasurementRecord:
    return MeasurementRecord(
        name=_text(event.get("name")) or "",
        value=event.get("value"),
        units=_text(event.get("units")),
        low=_number(event.get("low")),
        high=_number(event.get("high")),
        outcome=_text(event.get("outcome")) or "passed",
        nodeid=_text(event.get("nodeid")),
        dut=dut,
        attempt=attempt,
        limits=_limits(event.get("limits")),
        marginal=event.get("marginal") is True,
        where=_text(event.get("where")),
        ts=_number(event.get("ts")),
        seq=event["seq"] if type(event.get("seq")) is int else None,
        superseded=superseded,
    )


def _attachment(event: Event, dut: str | None, attempt: int, superseded: bool) -> Attachment:
    size = event.get("size")
    return Attachment(
        name=_text(event.get("name")) or "",
        path=_text(event.get("path")) or "",
        mime=_text(event.get("mime")),
        size=size if type(size) is int and size >= 0 else None,
        sha256=_text(event.get("sha256")),
        nodeid=_text(event.get("nodeid")),
        dut=dut,
        attempt=attempt,
        series=event.get("series") is True,
        ts=_number(event.get("ts")),
        seq=event["seq"] if type(event.get("seq")) is int else None,
        superseded=superseded,
    )


def _attempt(number: int, parts: list[Any], dut: str | None, last: int | None) -> Attempt:
    started, ended, measured, attached = parts
    outcome = _text(ended.get("outcome")) if ended is not None else None
    superseded = outcome == "rerun" or (last is not None and number < last)
    return Attempt(
        attempt=number,
        outcome=outcome,
        duration=_number(ended.get("duration")) if ended is not None else None,
        message=_text(ended.get("message")) if ended is not None else None,
        start=_number(started.get("ts")) if started is not None else None,
        end=_number(ended.get("ts")) if ended is not None else None,
        measurements=tuple(_measurement(e, dut, a, superseded) for e, a in measured),
        attachments=tuple(_attachment(e, dut, a, superseded) for e, a in attached),
    )


def _verdict(tests: Iterable[TestRecord], loose: Iterable[MeasurementRecord], session_outcome: str) -> str:
    tests = list(tests)
    counted = [m for t in tests for m in t.measurements] + list(loose)
    if any(t.outcome in FAILING for t in tests) or any(m.outcome == "failed" for m in counted):
        return "failed"
    if session_outcome in ("errored", "terminated"):
        return session_outcome
    if session_outcome == "incomplete" or any(t.outcome is None for t in tests):
        return "incomplete"
    if counted or any(t.outcome in TESTED for t in tests):
        return "passed"
    return "skipped"


def build_record(log: SessionLog) -> SessionRecord:
    """The record of the events in ``log`` (which may be partial: a running or damaged session)."""
    started: Mapping[str, Any] = log.started or {}
    ended = log.ended
    outcome = (_text(ended.get("outcome")) or "incomplete") if ended is not None else "incomplete"
    session_dut = _text(started.get("dut"))
    builder = _Builder(session_dut)
    for event in log.events:
        builder.add(event)
    if not builder.order:
        builder.order[session_dut] = None
    units = []
    for dut in builder.order:
        info: Event = builder.unit_info.get(dut) or (started if dut == session_dut else {})
        tests = []
        for (test_dut, nodeid), attempts in builder.tests.items():
            if test_dut != dut:
                continue
            last = builder.last_outcome.get((dut, nodeid))
            built = [_attempt(n, attempts[n], dut, last) for n in sorted(attempts)]
            tests.append(TestRecord(nodeid, built[-1], tuple(built[:-1])))
        measured, attached = builder.loose.get(dut, ([], []))
        loose = tuple(_measurement(e, dut, 1, False) for e, _ in measured)
        units.append(
            UnitRecord(
                dut=dut,
                part=_text(info.get("dut_part")),
                unit_attempt=_count(info.get("unit_attempt")),
                slot=_text(info.get("slot")) or ("main" if info is started and dut is not None else None),
                verdict=_verdict(tests, loose, outcome),
                tests=tuple(tests),
                measurements=loose,
                attachments=tuple(_attachment(e, dut, 1, False) for e, _ in attached),
            )
        )
    # a unit that only the session named, while others were tested: not a unit of its own
    if len(units) > 1 and session_dut is None:
        units = [u for u in units if u.dut is not None or u.tests or u.measurements or u.attachments]
    return SessionRecord(
        id=_text(started.get("session")) or log.path.parent.name,
        station=_text(started.get("station")),
        host=_text(started.get("host")),
        user=_text(started.get("user")),
        start=_number(started.get("ts")),
        end=_number(ended.get("ts")) if ended is not None else None,
        outcome=outcome,
        mock=started.get("mock") is True,
        dut=session_dut,
        limits_file=_text(started.get("limits_file")),
        limits_sha256=_text(started.get("limits_sha256")),
        path=log.path,
        units=tuple(units),
        bad_lines=log.bad_lines,
        torn=log.torn,
        lost=log.gaps().lost,
        started=started,
    )
