"""The :class:`Station` protocol: what fixtures, scripts and xdist workers use of a session.

Two classes implement it, each whole: the holder
(:class:`pytest_litmus.holder.StationConnection`: opens, locks and records) and
the joined session (:class:`pytest_litmus.sharing.joined.JoinedStation`: the
holder's instruments and log, reached through its instrument server).
``connect()`` returns either; code that uses a station should be typed against
this protocol.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from math import isfinite as _isfinite
from pathlib import Path
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, runtime_checkable

from pytest_litmus.events import encode_value, events_path, filter_events, read_events
from pytest_litmus.eventtypes import EventType
from pytest_litmus.limittext import LimitsDict, limits_key
from pytest_litmus.measurements import Measurement, judge

if TYPE_CHECKING:
    from pytest_litmus.config import StationConfig
    from pytest_litmus.dut import Dut
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.sync import SyncResult

__all__ = ["SESSION_OUTCOMES", "Instrument", "SessionOutcome", "SrqWaiterLike", "Station"]

SessionOutcome = Literal["passed", "failed", "errored", "terminated"]
SESSION_OUTCOMES: tuple[SessionOutcome, ...] = ("passed", "failed", "errored", "terminated")
#: ``timeout`` of :meth:`Station.instrument`: seconds, None (wait forever) or the session's default.
LockWait = float | None | Literal["default"]


@runtime_checkable
class Instrument(Protocol):
    """A role's instrument as a station hands it out: the driver's methods, recorded.

    ``lock_context()`` keeps the instrument this caller's for a block (a write
    and its read), PyVISA's name for the same idea.
    """

    def lock_context(self, timeout: float | None = None) -> AbstractContextManager[Any]: ...


class SrqWaiterLike(Protocol):
    """What :meth:`Station.srq` returns: ``wait`` for the status byte, ``close`` to disarm."""

    def wait(self, timeout: float | None = 10.0) -> int: ...

    def close(self) -> None: ...


class Station(Protocol):
    """One session on one station, as its users see it."""

    config: StationConfig
    data_dir: Path
    mock: bool
    hooks: LitmusPluginManager
    #: How many processes meet at :meth:`sync` by default (the plugin sets the xdist worker count).
    sync_parties: int | None
    #: The unit this process tests (None: no unit named); on every ``Measurement`` and ``TestOutcome``.
    dut: Dut | None
    #: The running test's attempt (1, then 2, ... when it is rerun); on its events.
    attempt: int

    @property
    def session_id(self) -> str: ...

    @property
    def event_log(self) -> Path: ...

    @property
    def started(self) -> bool: ...

    @property
    def nodeid(self) -> str | None: ...

    @nodeid.setter
    def nodeid(self, value: str | None) -> None: ...

    def start(self) -> Self: ...

    def stop(self, outcome: SessionOutcome = "passed") -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None: ...

    def instrument(self, role: str, timeout: LockWait = "default") -> Any: ...

    def release(self, role: str) -> None: ...

    def srq(self, instrument: Any, *, ese: int = 1, sre: int = 32, mechanism: str | None = None) -> SrqWaiterLike: ...

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]: ...

    def measure(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement: ...

    def observe(self, key: str, value: Any, *, units: str | None = None) -> str: ...

    def attach(self, name: str, data_or_path: Any, mime: str | None = None) -> dict[str, Any]: ...

    def configure(self, role: str, method: str, **parameters: Any) -> None: ...

    def events(
        self, event_type: str | Sequence[str] | None = None, role: str | None = None
    ) -> list[dict[str, Any]]: ...

    def on_event(
        self,
        callback: Callable[[dict[str, Any]], object],
        *,
        event_type: str | Sequence[str] | None = None,
        role: str | None = None,
        since: Any = None,
    ) -> Callable[[], None]: ...

    def sync(self, name: str, timeout: float | None = None, *, parties: int | None = None) -> SyncResult: ...

    def test_started(self, nodeid: str, attempt: int | None = None) -> None: ...

    def test_finished(self, nodeid: str, outcome: str, duration: float, message: str | None = None) -> None: ...


_SHOWN_FILES: dict[str, str] = {}
#: The JSON of a ``limits`` dict by its items: a run judges many values against few limits.
_LIMITS_JSON: dict[tuple[Any, ...], str] = {}
_LIMITS_CACHE_SIZE = 4096


def _limits_json(limits: dict[str, Any] | None) -> str:
    if limits is None:
        return "null"
    if type(limits) is LimitsDict:  # judged by litmus: its JSON is kept on it
        text = limits.json
        if text is None:
            text = limits.json = encode_value(dict(limits))
        return text
    try:
        key = limits_key(limits)  # 1, 1.0 and True, or 0.0 and -0.0, are written differently
        text = _LIMITS_JSON.get(key)
    except TypeError:  # an unhashable value (a list in ``equals``): not cached
        return encode_value(limits)
    if text is None:
        if len(_LIMITS_JSON) >= _LIMITS_CACHE_SIZE:
            _LIMITS_JSON.clear()
        text = _LIMITS_JSON[key] = encode_value(limits)
    return text


#: ``(nodeid, dut, attempt, nodeid JSON, dut and attempt JSON)`` of the last recorded test event.
_LAST_TEST: tuple[Any, Any, Any, str, str] = (None, None, None, "null", '"dut":null,"attempt":null')
_OUTCOMES = {"passed": '"passed"', "failed": '"failed"'}


def _test_json(nodeid: str | None, dut: str | None, attempt: int | None) -> tuple[Any, Any, Any, str, str]:
    """``nodeid`` and ``"dut":...,"attempt":...`` as JSON, kept from one event of a test to the next."""
    global _LAST_TEST
    test = _LAST_TEST
    if test[0] is not nodeid or test[1] is not dut or test[2] is not attempt:
        test = _LAST_TEST = (
            nodeid,
            dut,
            attempt,
            encode_value(nodeid),
            f'"dut":{encode_value(dut)},"attempt":{encode_value(attempt)}',
        )
    return test


def started_body(nodeid: str, dut: str | None, attempt: int | None) -> str:
    """A ``TestStarted`` event's fields as JSON (no braces), as ``json`` would write them."""
    test = _test_json(nodeid, dut, attempt)
    return f'"nodeid":{test[3]},{test[4]}'


def outcome_body(
    nodeid: str, outcome: str, duration: float, message: str | None, dut: str | None, attempt: int | None
) -> str:
    """A ``TestOutcome`` event's fields as JSON (no braces), as ``json`` would write them."""
    test = _test_json(nodeid, dut, attempt)
    return (
        f'"nodeid":{test[3]},"outcome":{_OUTCOMES.get(outcome) or encode_value(outcome)},'
        f'"duration":{encode_value(duration)},"message":{encode_value(message)},{test[4]}'
    )


def measurement_fields(m: Measurement, dut: str | None, attempt: int | None) -> dict[str, Any]:
    """A ``Measurement`` event's fields: what :func:`measurement_body` writes, as a dict."""
    return {**m.fields(), "dut": dut, "attempt": attempt}


def outcome_fields(
    nodeid: str, outcome: str, duration: float, message: str | None, dut: str | None, attempt: int | None
) -> dict[str, Any]:
    """A ``TestOutcome`` event's fields: what :func:`outcome_body` writes, as a dict."""
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "duration": duration,
        "message": message,
        "dut": dut,
        "attempt": attempt,
    }


def measurement_body(m: Measurement, dut: str | None, attempt: int | None) -> str:
    """A ``Measurement`` event's fields as JSON (``"name":...,"attempt":1``, no braces), as ``json`` would write them.

    The same keys, order and values as ``{**m.fields(), "dut": dut, "attempt": attempt}`` through
    the event encoder (tests/test_events.py compares the two); several times cheaper: what
    repeats (the test's fields, a :class:`LimitsDict`'s bounds and JSON) is encoded once.
    """
    value, low, high, limits = m.value, m.low, m.high, m.limits
    if type(limits) is LimitsDict:
        kept = limits.bounds
        if kept is not None and kept[0] is low and kept[1] is high:
            bounds = kept[2]
        else:
            bounds = f'"low":{encode_value(low)},"high":{encode_value(high)}'
            limits.bounds = (low, high, bounds)
        limits_json = limits.json or _limits_json(limits)
    else:
        bounds = f'"low":{encode_value(low)},"high":{encode_value(high)}'
        limits_json = _limits_json(limits)
    test = _test_json(m.nodeid, dut, attempt)
    texts = _TEXTS_JSON
    name, units, where = m.name, m.units, m.where
    name_json = texts.get(name) if type(name) is str else None  # a str subclass may hash as it likes
    units_json = texts.get(units) if units is None or type(units) is str else None
    where_json = texts.get(where) if where is None or type(where) is str else None
    return (
        f'"name":{name_json or _text_json(name)},'
        f'"value":{repr(value) if type(value) is float and _isfinite(value) else encode_value(value)},'
        f'"units":{units_json or _text_json(units)},{bounds},'
        f'"outcome":{_OUTCOMES.get(m.outcome) or encode_value(m.outcome)},'
        f'"nodeid":{test[3]},"limits":{limits_json},"marginal":{"true" if m.marginal else "false"},'
        f'"where":{where_json or _text_json(where)},{test[4]}'
    )


#: The JSON of the names, units and call sites that measurements repeat.
_TEXTS_JSON: dict[str | None, str] = {None: "null"}
_TEXTS_SIZE = 4096


def _text_json(text: Any) -> str:
    """``text`` as JSON, kept when it is a ``str`` (a measurement's name, units or call site)."""
    encoded = encode_value(text)
    if type(text) is str:
        if len(_TEXTS_JSON) >= _TEXTS_SIZE:
            _TEXTS_JSON.clear()
            _TEXTS_JSON[None] = "null"
        _TEXTS_JSON[text] = encoded
    return encoded


def caller_line() -> str | None:
    """``path/to/file.py:42`` of the first frame outside this package (the test's ``measure`` call)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("pytest_litmus"):
        frame = frame.f_back  # type: ignore[assignment]
    return None if frame is None else frame_line(frame)


#: ``path:line`` by code object id and instruction offset; the code object is kept with them,
#: so that its id cannot be taken by another while the entry lives.
_CALL_SITES: dict[int, tuple[CodeType, dict[int, str]]] = {}
_CALL_SITES_SIZE = 4096


def frame_line(frame: FrameType) -> str:
    """``path/to/file.py:42``: where ``frame`` is now, its path relative to the working directory
    when it lies below it.

    Kept per call site: a frame's line number is found by scanning its code's line table,
    and a test measures from the same few lines again and again.
    """
    code = frame.f_code
    site = _CALL_SITES.get(id(code))
    if site is None or site[0] is not code:
        if len(_CALL_SITES) >= _CALL_SITES_SIZE:
            _CALL_SITES.clear()
        site = _CALL_SITES[id(code)] = (code, {})
    lines = site[1]
    where = lines.get(frame.f_lasti)
    if where is None:
        where = lines[frame.f_lasti] = f"{_shown_file(code.co_filename)}:{frame.f_lineno}"
    return where


def _shown_file(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it (cached per file)."""
    shown = _SHOWN_FILES.get(filename)
    if shown is None:
        try:
            relative = os.path.relpath(filename)
            shown = filename if relative.startswith("..") else relative
        except ValueError:  # another drive (Windows)
            shown = filename
        _SHOWN_FILES[filename] = shown
    return shown


class StationBase:
    """What both kinds of station do alike, over their own ``emit`` and ``nodeid``.

    Subclasses set ``config``, ``data_dir``, ``mock``, ``hooks`` and
    ``sync_parties``, and implement the abstract parts of :class:`Station`.
    """

    config: StationConfig
    data_dir: Path
    sync_parties: int | None
    dut: Dut | None = None
    attempt: int = 1
    #: ``(nodeid, attempt)`` of the last test that ended ``rerun``: its next start is the next attempt.
    _rerun: tuple[str, int] | None = None

    def _start_attempt(self, nodeid: str, attempt: int | None) -> None:
        """Attribute what follows to ``nodeid``, attempt ``attempt`` (None: 1, or one after its rerun)."""
        if attempt is None:
            rerun = self._rerun
            attempt = rerun[1] + 1 if rerun is not None and rerun[0] == nodeid else 1
        elif type(attempt) is not int or attempt < 1:
            raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
        self.nodeid, self.attempt = nodeid, attempt

    @property
    def session_id(self) -> str:
        raise NotImplementedError

    @property
    def nodeid(self) -> str | None:
        """The test that instrument calls and measurements are attributed to."""
        raise NotImplementedError

    @nodeid.setter
    def nodeid(self, value: str | None) -> None:
        raise NotImplementedError

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self, outcome: SessionOutcome = "passed") -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle

    @property
    def event_log(self) -> Path:
        """The session's ``events.jsonl``."""
        return events_path(self.data_dir, self.session_id)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """No exception -> ``passed``; ``KeyboardInterrupt``/``SystemExit`` -> ``terminated``; else ``errored``."""
        if exc_type is None:
            self.stop("passed")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.stop("terminated")
        else:
            self.stop("errored")

    # ------------------------------------------------------------------ events

    def events(self, event_type: str | Sequence[str] | None = None, role: str | None = None) -> list[dict[str, Any]]:
        """Events of this session so far, from its file, optionally filtered."""
        if not self.event_log.exists():
            return []
        return list(filter_events(read_events(self.event_log), event_type, role))

    def configure(self, role: str, method: str, **parameters: Any) -> None:
        """Record an ``InstrumentConfigure`` event (an operation done outside the proxy, e.g. from a UI)."""
        self.config.role(role)
        self.emit(EventType.INSTRUMENT_CONFIGURE, role=role, method=method, parameters=parameters, nodeid=self.nodeid)

    def observe(self, key: str, value: Any, *, units: str | None = None) -> str:
        """Record an ``Observation`` (a sample outside any limit); returns a reference to it."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"observation key must be a non-empty string, got {key!r}")
        event = self.emit(EventType.OBSERVATION, key=key, value=value, units=units, nodeid=self.nodeid)
        return f"channel://{self.session_id}/{key}#{event['seq']}"

    def measure(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement:
        """Judge and record a ``Measurement``; returns it (it never raises for a failed value).

        With a limits file (``config.limits``) a listed name is judged by the
        file; an unlisted one raises ``LimitNotListed`` (unless the file says
        ``unlisted: open``), and inline limits or units that differ from the
        file's raise ``LimitConflict`` (docs/limits.md).
        """
        __tracebackhide__ = True  # pytest shows the test's line for a LimitError, not litmus's
        return self.measure_at(name, value, units, low, high, caller_line())

    def measure_at(
        self, name: str, value: Any, units: str | None, low: Any, high: Any, where: str | None
    ) -> Measurement:
        """:meth:`measure`, its call site (``where``, ``path:line``) already known: the ``measure`` fixture's way."""
        __tracebackhide__ = True
        table = self.config.limits
        spec = None if table is None else table.spec_for(name, units, low, high)
        measurement = judge(name, value, units=units, low=low, high=high, nodeid=self.nodeid, spec=spec, where=where)
        dut = self.dut
        self._record_measurement(measurement, None if dut is None else dut.serial, self.attempt)
        return measurement

    def _record_measurement(self, measurement: Measurement, dut: str | None, attempt: int | None) -> None:
        """Record ``measurement`` of unit ``dut`` as a ``Measurement`` event (the holder has a faster path)."""
        self.emit(EventType.MEASUREMENT, **measurement_fields(measurement, dut, attempt))

    def _record_outcome(self, nodeid: str, outcome: str, duration: float, message: str | None) -> None:
        """Record the ``TestOutcome`` event (the holder has a faster path)."""
        dut, attempt = self._test_unit()
        self.emit(EventType.TEST_OUTCOME, **outcome_fields(nodeid, outcome, duration, message, dut, attempt))

    def _test_unit(self) -> tuple[str | None, int]:
        """The unit's serial (None: no unit) and the running test's attempt."""
        dut = self.dut
        return None if dut is None else dut.serial, self.attempt

    def _test_fields(self) -> dict[str, Any]:
        """``dut`` and ``attempt`` of the running test, for ``TestStarted`` and ``TestOutcome``."""
        dut, attempt = self._test_unit()
        return {"dut": dut, "attempt": attempt}

    def attach(self, name: str, data_or_path: Any, mime: str | None = None) -> dict[str, Any]:
        """Store an attachment under the session directory and record its ``Attachment`` event; returns the event.

        ``data_or_path``: bytes, a text (``str``), a path (:class:`os.PathLike`, copied) or a
        numeric series (see :mod:`pytest_litmus.attachments`); ``mime`` is guessed
        from the name when None. A joined station writes the file itself (the
        holder's session directory is on this machine) and sends the event.
        Raises ``AttachmentError`` for what cannot be attached and
        ``AttachmentNotWritten`` when the disk refuses it (no event then).
        """
        from pytest_litmus.attachments import store
        from pytest_litmus.events import session_dir

        stored = store(session_dir(self.data_dir, self.session_id), name, data_or_path, mime)
        return self.emit(EventType.ATTACHMENT, **stored.fields(), nodeid=self.nodeid, **self._test_fields())

    def test_finished(self, nodeid: str, outcome: str, duration: float, message: str | None = None) -> None:
        """Record ``TestOutcome`` and stop attributing calls to the test."""
        self._record_outcome(nodeid, outcome, duration, message)
        self._rerun = (nodeid, self.attempt) if outcome == "rerun" else None
        self.nodeid = None

    # ------------------------------------------------------------------ sharing

    def on_event(
        self,
        callback: Callable[[dict[str, Any]], object],
        *,
        event_type: str | Sequence[str] | None = None,
        role: str | None = None,
        since: Any = None,
    ) -> Callable[[], None]:
        """Replay matching past events to ``callback``, then push new ones; returns unsubscribe.

        ``since``: an int is a ``seq`` (events after it), a float or datetime a time.
        Reads the event file (see docs/sharing.md), so it never slows the writer.
        """
        from pytest_litmus.follow import follow

        return follow(self.event_log, callback, event_type=event_type, role=role, since=since)

    def sync(self, name: str, timeout: float | None = None, *, parties: int | None = None) -> SyncResult:
        """Block until ``parties`` processes of this session reached barrier ``name``.

        ``parties`` defaults to :attr:`sync_parties` (under pytest: the number of
        xdist workers, 1 without xdist). A party that dies, or ``timeout``
        seconds, raises ``SyncError`` in the others instead of hanging. Records
        ``SyncArrived`` and ``SyncReleased``.
        """
        from pytest_litmus.events import session_dir
        from pytest_litmus.sync import sync

        count = parties if parties is not None else self.sync_parties
        if count is None:
            raise ValueError(
                f"sync({name!r}) needs parties=N: how many processes of session {self.session_id} meet there"
            )
        result = sync(
            session_dir(self.data_dir, self.session_id),
            name,
            count,
            timeout=timeout,
            on_arrived=lambda fields: self.emit(EventType.SYNC_ARRIVED, **fields),
        )
        self.emit(EventType.SYNC_RELEASED, **result.fields())
        return result
