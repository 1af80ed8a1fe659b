"""Measurements: a value with units and limits, judged passed or failed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import isfinite as _isfinite
from numbers import Real
from typing import Any, Literal

from pytest_litmus.errors import LimitError, LimitTypeError
from pytest_litmus.limits import LimitSpec, describe_limits, format_number
from pytest_litmus.limittext import LimitsDict

Outcome = Literal["passed", "failed"]


@dataclass(frozen=True)
class Measurement:
    """One recorded value. ``outcome`` is ``failed`` when it lies outside ``low``..``high``.

    Inline limits are inclusive; a missing limit is open. A measurement with no
    limits passes once recorded (as in OpenHTF). A NaN or infinite value fails
    any limit; NaN or infinite limits are refused. ``limits`` is what it was
    judged against (the canonical dict of docs/limits.md, ``source`` ``file`` or
    ``inline``; None without limits), ``low``/``high`` the effective numeric
    bounds. ``marginal``: passed, but at or beyond the file's marginal band.
    """

    name: str
    value: Any
    units: str | None = None
    low: float | None = None
    high: float | None = None
    outcome: Outcome = "passed"
    nodeid: str | None = None
    limits: dict[str, Any] | None = None
    marginal: bool = False
    #: ``path/to/test_x.py:42``: where ``measure`` was called (None: not known).
    where: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def describe(self) -> str:
        """``rail_3v3 = 3.6 V, limits [3.2, 3.4]: failed`` (``: passed, marginal`` in the marginal band)."""
        units = f" {self.units}" if self.units else ""
        value = format_number(self.value) if type(self.value) is float else repr(self.value)
        outcome = f"{self.outcome}, marginal" if self.marginal else self.outcome
        limits = describe_limits(self.limits)
        shown = "" if limits == "no limits" else f", limits {limits}"
        return f"{self.name} = {value}{units}{shown}: {outcome}"

    def fields(self) -> dict[str, Any]:
        """The event fields, in declaration order (what ``dataclasses.asdict`` gives, without its deep copy).

        ``limits`` is a plain copy: an event's dict is its own, to change as a subscriber likes.
        """
        limits = self.limits
        return {
            "name": self.name,
            "value": self.value,
            "units": self.units,
            "low": self.low,
            "high": self.high,
            "outcome": self.outcome,
            "nodeid": self.nodeid,
            "limits": None if limits is None else dict(limits),
            "marginal": self.marginal,
            "where": self.where,
        }

    def shortfall(self) -> str:
        """How a failed value misses its limits: ``0.21 V above high``, ``expected == 'OK'``, ``not finite``."""
        value: Any = self.value
        units = f" {self.units}" if self.units else ""
        limits = self.limits or {}
        if limits.get("equals") is not None:
            return f"expected == {limits['equals']!r}"
        if isinstance(self.value, Real) and not isinstance(self.value, bool):
            if not _finite(value):
                return "not a finite number"
            if self.high is not None and value >= self.high:
                by = value - self.high
                return f"{format_number(by)}{units} above high" if by else "at the exclusive high"
            if self.low is not None and value <= self.low:
                by = self.low - value
                return f"{format_number(by)}{units} below low" if by else "at the exclusive low"
        return "out of limits"

    def failure_line(self) -> str:
        """One line for a failed measurement: name, value, limits, by how much, where it was measured.

        ``rail_3v3 = 3.61 V, limits [3.2, 3.4]: 0.21 V above high (test_board.py:14)``
        """
        units = f" {self.units}" if self.units else ""
        value = format_number(self.value) if type(self.value) is float else repr(self.value)
        where = f" ({self.where})" if self.where else ""
        return f"{self.name} = {value}{units}, limits {describe_limits(self.limits)}: {self.shortfall()}{where}"


_NUMBERS = (float, int)  # the common types, checked by identity before the slower ``Real`` ABC


def _check_limit(name: str, which: str, limit: Any) -> float | None:
    __tracebackhide__ = True
    if limit is None:
        return None
    if type(limit) not in _NUMBERS and (isinstance(limit, bool) or not isinstance(limit, Real)):
        raise LimitTypeError(name, f"{which} limit must be a real number or None", limit)
    try:
        number = float(limit)
    except OverflowError:
        raise LimitError(name, f"{which} limit is too large for a float", limit) from None
    if not math.isfinite(number):
        raise LimitError(name, f"{which} limit must be finite (None leaves that side open)", limit)
    return number


def _finite(value: Any) -> bool:
    """Whether a real ``value`` is a finite number (an int always is, however large)."""
    if type(value) is int:
        return True
    try:
        return math.isfinite(value)
    except OverflowError:  # a Fraction too large for a float: finite, and compared exactly below
        return True


#: Inline limits by ``(low, high)``, shared by the measurements judged against them. Only float
#: (or None) bounds other than zero are kept: ``0.0`` and ``-0.0`` are equal keys but print apart.
_INLINE: dict[tuple[float | None, float | None], LimitsDict] = {}
_INLINE_SIZE = 4096
_new = object.__new__
_set = object.__setattr__


def judge(
    name: str,
    value: Any,
    *,
    units: str | None = None,
    low: Any = None,
    high: Any = None,
    nodeid: str | None = None,
    spec: LimitSpec | None = None,
    where: str | None = None,
) -> Measurement:
    """A :class:`Measurement` with its outcome decided.

    ``spec`` (a limits file's, see :mod:`pytest_litmus.limits`) takes the place
    of ``low``/``high``, which the caller has checked against it. Inline limits
    must be finite real numbers (or None, an open side) with ``low <= high``;
    a value judged against limits must be a real number. Anything else raises
    :class:`~pytest_litmus.errors.LimitError` (``LimitTypeError`` for a wrong type)
    naming the measurement. A NaN or infinite value fails any limit.
    """
    __tracebackhide__ = True
    kind = type(value)
    if (
        spec is None
        and (kind is float or kind is int)
        and (type(low) is float or low is None)
        and (type(high) is float or high is None)
        and type(name) is str
        and name
    ):
        limits = _INLINE.get((low, high))  # float bounds judged before: checked then
        if limits is not None:
            lo, hi = limits.get("low"), limits.get("high")
            passed = (kind is int or _isfinite(value)) and (lo is None or lo <= value) and (hi is None or value <= hi)
            return _measurement(
                name, value, units, lo, hi, "passed" if passed else "failed", nodeid, limits, False, where
            )
    if not isinstance(name, str) or not name:
        raise ValueError(f"measurement name must be a non-empty string, got {name!r}")
    if spec is not None:
        passed, marginal = spec.check(name, value)
        return _measurement(
            name,
            value,
            units if units is not None else spec.units,
            spec.low,
            spec.high,
            "passed" if passed else "failed",
            nodeid,
            spec.as_dict,
            marginal,
            where,
        )
    lo = _check_limit(name, "low", low)
    hi = _check_limit(name, "high", high)
    if lo is None and hi is None:
        return _measurement(name, value, units, None, None, "passed", nodeid, None, False, where)
    if lo is not None and hi is not None and lo > hi:
        raise LimitError(name, f"low limit {lo:g} is above high limit {hi:g}", (low, high))
    if type(value) not in _NUMBERS and (isinstance(value, bool) or not isinstance(value, Real)):
        raise LimitTypeError(name, "has limits, so its value must be a number", value)
    outcome: Outcome = "passed"
    if not _finite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        outcome = "failed"
    limits = _inline(lo, hi)
    if (type(low) is float or low is None) and (type(high) is float or high is None) and low != 0 and high != 0:
        if len(_INLINE) >= _INLINE_SIZE:
            _INLINE.clear()
        _INLINE[(low, high)] = limits
    return _measurement(name, value, units, lo, hi, outcome, nodeid, limits, False, where)


def _measurement(
    name: str,
    value: Any,
    units: str | None,
    low: float | None,
    high: float | None,
    outcome: Outcome,
    nodeid: str | None,
    limits: dict[str, Any] | None,
    marginal: bool,
    where: str | None,
) -> Measurement:
    """``Measurement(...)`` without the frozen dataclass's ``object.__setattr__`` per field (a third of the cost)."""
    m = _new(Measurement)
    _set(
        m,
        "__dict__",
        {
            "name": name,
            "value": value,
            "units": units,
            "low": low,
            "high": high,
            "outcome": outcome,
            "nodeid": nodeid,
            "limits": limits,
            "marginal": marginal,
            "where": where,
        },
    )
    return m


def _inline(lo: float | None, hi: float | None) -> LimitsDict:
    """The ``limits`` dict of inline (inclusive) bounds."""
    limits: dict[str, Any] = {}
    if lo is not None:
        limits["low"] = lo
    if hi is not None:
        limits["high"] = hi
    limits["low_inclusive"] = limits["high_inclusive"] = True
    limits["source"] = "inline"
    return LimitsDict(limits)
