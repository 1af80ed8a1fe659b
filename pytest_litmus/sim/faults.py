"""Fault injection: a simulated instrument that times out, drops the connection, lies or drifts.

Faults come from a simulation file (``litmus: faults: [...]``) or at run time::

    from pytest_litmus.sim import device_of
    device_of(dmm).inject("timeout", on="READ?", count=1)

Kinds (each matches program message units, optionally only those whose header is ``on``;
the first ``after`` matches pass untouched; then the fault fires ``count`` times, or for ever
(``error``: once, unless ``count`` says otherwise):

- ``timeout``: the answer of a query is lost (the read times out);
- ``disconnect``: the connection drops (at once, or at the matching command): that command
  and every later I/O fails with ``VI_ERROR_CONN_LOST`` until :meth:`Faults.clear`;
- ``idn``: ``*IDN?`` answers ``answer``;
- ``drift``: each number of a numeric answer is moved by ``offset`` + ``per_call`` times the
  drifted answers before it + ``per_second`` times the seconds since the first;
- ``error``: the command queues ``error`` (and sets its ESR bit).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_litmus.errors import NotSimulated
from pytest_litmus.sim.status import ERROR_QUERIES

if TYPE_CHECKING:
    from pytest_litmus.sim.device import SimDevice

__all__ = ["KINDS", "FaultSpec", "Faults", "device_of", "fault_spec", "parse_fault"]

KINDS = ("timeout", "disconnect", "idn", "drift", "error")
_ANSWERED = frozenset({"timeout", "idn", "drift"})  # these count only units that produce an answer
_PARAMS: dict[str, tuple[str, ...]] = {
    "timeout": (),
    "disconnect": (),
    "idn": ("answer",),
    "drift": ("offset", "per_call", "per_second"),
    "error": ("error",),
}
_COMMON = ("kind", "on", "after", "count")


class FaultSpec:
    """One fault as declared (read-only by contract; :class:`Faults` keeps the counters).

    A plain class: a dataclass costs start-up time, and a ``NamedTuple`` cannot have a ``count`` field.
    """

    __slots__ = ("after", "answer", "count", "error", "kind", "offset", "on", "per_call", "per_second")

    def __init__(
        self,
        kind: str,
        on: str | None = None,
        after: int = 0,
        count: int | None = None,
        answer: str = "LITMUS,WRONG-INSTRUMENT,0,0",
        error: str = '-300,"Device-specific error"',
        offset: float = 0.0,
        per_call: float = 0.0,
        per_second: float = 0.0,
    ) -> None:
        self.kind = kind
        self.on = on
        self.after = after
        self.count = count
        self.answer = answer
        self.error = error
        self.offset = offset
        self.per_call = per_call
        self.per_second = per_second

    def __repr__(self) -> str:  # what ``inject`` returns, shown as it was declared
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"FaultSpec({shown})"


_FIELDS = ("kind", "on", "after", "count", "answer", "error", "offset", "per_call", "per_second")


def parse_fault(raw: Any, fail: Callable[[str, str, Any], NoReturn]) -> FaultSpec:
    """A :class:`FaultSpec` from a mapping; ``fail(key, expected, got)`` on any mistake."""
    if not isinstance(raw, Mapping):
        fail("", "a mapping with a kind: " + ", ".join(KINDS), raw)
    if True in raw:  # YAML 1.1 reads a bare ``on:`` key as true
        raw = {("on" if name is True else name): value for name, value in raw.items()}
    kind = raw.get("kind")
    if kind not in KINDS:
        fail("kind", "one of " + ", ".join(KINDS), kind)
    allowed = _COMMON + _PARAMS[kind]
    for name in raw:
        if name not in allowed:
            fail(str(name), f"one of {', '.join(allowed)} (for a {kind} fault)", name)
    values: dict[str, Any] = {"kind": kind, "count": 1 if kind == "error" else None}
    on = raw.get("on")
    if on is not None:
        if not isinstance(on, str) or not on.strip() or not on.isascii():
            fail("on", "a command header like READ?", on)
        values["on"] = on.strip().upper()
    for name in ("after", "count"):
        if raw.get(name) is not None:
            value = raw[name]
            low = 0 if name == "after" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                fail(name, f"an integer >= {low}", value)
            values[name] = value
    for name in ("answer", "error"):
        if name in raw:
            if not isinstance(raw[name], str) or not raw[name].isascii() or "\n" in raw[name]:
                fail(name, "one line of ASCII text", raw[name])
            values[name] = raw[name]
    for name in ("offset", "per_call", "per_second"):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                fail(name, "a number", value)
            values[name] = float(value)
    return FaultSpec(**values)


class _Armed:
    """A fault armed on a device, with its counters."""

    __slots__ = ("fired", "seen", "spec", "started")

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.seen = 0
        self.fired = 0
        self.started: float | None = None


class Faults:
    """The faults of one device (guarded by its mutex); ``disconnected`` is what front doors check."""

    __slots__ = ("active", "clock", "disconnected", "errors")

    def __init__(self) -> None:
        self.active: list[_Armed] = []
        self.disconnected = False
        #: injected errors for ``SYST:ERR?`` where the file answers it (the status model keeps no queue there)
        self.errors: deque[str] = deque()
        #: the clock of ``per_second`` drift (replaceable in tests)
        self.clock: Callable[[], float] = time.monotonic

    def __bool__(self) -> bool:
        return bool(self.active) or self.disconnected or bool(self.errors)

    def add(self, spec: FaultSpec) -> None:
        if spec.kind == "disconnect" and spec.on is None and spec.after == 0:
            self.disconnected = True  # at once: a pending read fails too
        else:
            self.active.append(_Armed(spec))

    def clear(self) -> None:
        self.active.clear()
        self.errors.clear()
        self.disconnected = False

    def apply(self, header: str, response: Any, no_response: Any, queue_error: Callable[[str], None]) -> Any:
        """Run one program message unit (``header``, upper-cased) past the faults; the answer to send."""
        if self.errors:
            if header == "*CLS":
                self.errors.clear()
            elif header in ERROR_QUERIES and response is not no_response:
                response = self.errors.popleft().encode()
        for armed in list(self.active):
            spec = armed.spec
            if spec.on is not None and spec.on != header:
                continue
            if spec.kind in _ANSWERED and (response is no_response or (spec.kind == "idn" and header != "*IDN?")):
                continue
            armed.seen += 1
            if armed.seen <= spec.after:
                continue
            armed.fired += 1
            if spec.count is not None and armed.fired >= spec.count:
                self.active.remove(armed)
            if spec.kind == "timeout":
                response = no_response
            elif spec.kind == "disconnect":
                self.disconnected = True
                return no_response
            elif spec.kind == "idn":
                response = spec.answer.encode()
            elif spec.kind == "drift":
                response = self._drift(armed, response)
            else:
                queue_error(spec.error)
        return response

    def _drift(self, armed: _Armed, response: bytes) -> bytes:
        now = self.clock()
        if armed.started is None:
            armed.started = now
        spec = armed.spec
        delta = spec.offset + spec.per_call * (armed.fired - 1) + spec.per_second * (now - armed.started)
        try:
            values = [float(part) for part in response.split(b",")]
        except ValueError:
            return response  # not a numeric answer: left alone
        return ",".join(f"{value + delta:.12g}" for value in values).encode()


def fault_spec(kind: str, params: Mapping[str, Any]) -> FaultSpec:
    """A :class:`FaultSpec` from ``inject``'s arguments (a ``StationConfigError`` naming the bad one)."""
    from pytest_litmus.errors import StationConfigError

    def fail(key: str, expected: str, got: Any) -> NoReturn:
        raise StationConfigError(None, f"inject({kind!r}).{key}" if key else f"inject({kind!r})", expected, got)

    return parse_fault({"kind": kind, **params}, fail)


def device_of(instrument: Any) -> SimDevice:
    """The :class:`~pytest_litmus.sim.device.SimDevice` behind a pyvisa resource, a driver or a litmus proxy.

    ``NotSimulated`` if it is not simulated in this process: a real instrument, or a
    proxy whose instrument another process holds (a joined xdist worker).
    """
    from pytest_litmus.sim.device import SimDevice

    if isinstance(instrument, SimDevice):
        return instrument
    label = repr(instrument)
    if _slot(instrument, "_station") is not None:  # sharing.RemoteInstrument: the driver lives in the holder
        raise NotSimulated(label, "its instrument is held by another process (a joined session or xdist worker)")
    state = _slot(instrument, "_litmus")  # instruments.InstrumentProxy
    candidates = [instrument] if state is None else [getattr(state, "session", None), getattr(state, "driver", None)]
    for candidate in candidates:
        resource = candidate if _has(candidate, "visalib") else _get(candidate, "resource")
        visalib = _get(resource, "visalib")
        if resource is None or visalib is None:
            continue
        find = getattr(visalib, "device", None)
        if not callable(find):
            raise NotSimulated(label, f"its VISA library is {type(visalib).__name__}, not the litmus simulator")
        try:
            device = find(resource.resource_name)
        except KeyError:
            break
        if isinstance(device, SimDevice):
            return device
    raise NotSimulated(label, "no simulated instrument of this process behind it")


def _slot(instance: Any, name: str) -> Any:
    try:
        return object.__getattribute__(instance, name)
    except AttributeError:
        return None


def _get(instance: Any, name: str) -> Any:
    """``getattr`` that never forwards a failure (a driver's ``__getattr__`` may do anything)."""
    try:
        return getattr(instance, name, None)
    except Exception:
        return None


def _has(instance: Any, name: str) -> bool:
    return _get(instance, name) is not None
