"""How litmus prints numbers and limits: the terminal, the reports, JUnit properties and exports agree.

``format_number`` writes a number with 12 significant digits (``3.3*1.01`` -> ``3.333``);
``describe_limits`` writes a limits dict as ``[3.2, 3.4]``, ``3.3 ± 1%``, ``== 'OK'``;
``limit_texts`` gives both for a measurement, cached by value. A measurement judged by
litmus carries a :class:`LimitsDict`: read-only, shared by every measurement judged against
the same limits, and keeping its printed forms (its JSON, its texts) once made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

__all__ = ["LimitsDict", "describe_limits", "format_number", "limit_texts", "limits_key"]


class LimitsDict(dict):  # type: ignore[type-arg]
    """A read-only ``limits`` dict, shared by the measurements judged against it.

    It is a ``dict`` (``json.dumps``, ``==`` and ``m.limits["high"]`` work as for any
    dict) that refuses changes, so one object can stand for the same limits in every
    measurement and keep what was printed from it: ``json`` (its event JSON), ``bounds``
    (an event's ``"low":...,"high":...``) and ``texts`` (``limit_texts``'s answer) are filled
    on first use, the last two with the ``low`` and ``high`` objects they were made for.
    Copies (``dict(m.limits)``, ``copy.copy``, pickling) are plain dicts.
    """

    __slots__ = ("bounds", "json", "texts")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json: str | None = None
        self.bounds: tuple[Any, Any, str] | None = None
        self.texts: tuple[Any, Any, tuple[str, str, str | None]] | None = None

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a measurement's limits are read-only; change a copy: dict(measurement.limits)")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return copy.deepcopy(dict(self), memo)


def format_number(x: Any) -> str:
    """A number as every litmus output prints it: ``format(x, ".12g")`` (``3.3*1.01`` -> ``3.333``)."""
    if type(x) is float:  # the common case, before the slower ``Real`` ABC check
        return format(x, ".12g")
    if isinstance(x, bool) or not isinstance(x, Real):
        return repr(x) if isinstance(x, str) else str(x)
    try:
        return format(x, ".12g")
    except (TypeError, ValueError):  # a Real without format support (Fraction before 3.12)
        try:
            return format(float(x), ".12g")
        except OverflowError:
            return str(x)


def describe_limits(limits: Mapping[str, Any] | None) -> str:
    """``[3.2, 3.4]``, ``(3.2, 3.4]``, ``3.3 ± 1%``, ``== 'OK'``, ``<= 5``, ``no limits``; a marginal band is appended."""
    if not limits:
        return "no limits"
    if limits.get("equals") is not None:
        return f"== {limits['equals']!r}"
    nominal, low, high = limits.get("nominal"), limits.get("low"), limits.get("high")
    if nominal is not None and limits.get("tolerance_percent") is not None:
        text = f"{format_number(nominal)} ± {format_number(limits['tolerance_percent'])}%"
    elif nominal is not None and limits.get("tolerance") is not None:
        text = f"{format_number(nominal)} ± {format_number(limits['tolerance'])}"
    elif low is not None and high is not None:
        opening = "[" if limits.get("low_inclusive", True) else "("
        closing = "]" if limits.get("high_inclusive", True) else ")"
        text = f"{opening}{format_number(low)}, {format_number(high)}{closing}"
    elif low is not None:
        text = f"{'>=' if limits.get('low_inclusive', True) else '>'} {format_number(low)}"
    elif high is not None:
        text = f"{'<=' if limits.get('high_inclusive', True) else '<'} {format_number(high)}"
    else:
        return "no limits"
    marginal = [
        f"{sign} {format_number(limits[key])}"
        for key, sign in (("marginal_low", "<="), ("marginal_high", ">="))
        if limits.get(key) is not None
    ]
    return f"{text}, marginal {' or '.join(marginal)}" if marginal else text


def limits_key(limits: Mapping[str, Any]) -> tuple[Any, ...]:
    """A cache key for ``limits`` that is equal only for dicts that print alike.

    Values that are equal but print differently (``1``, ``1.0`` and ``True``; ``0.0`` and
    ``-0.0``) are told apart by their types and, where a value equals 0, their ``repr``.
    Using the key raises ``TypeError`` for an unhashable value (a list in ``equals``).
    """
    values = limits.values()
    key: tuple[Any, ...] = (tuple(limits.items()), tuple(map(type, values)))
    if 0 in values:  # False, 0, 0.0 and -0.0 are all equal to 0
        key += (tuple(map(repr, values)),)
    return key


#: ``limit_texts`` results by their arguments' types and values (limits repeat from test to test).
_LIMIT_TEXTS: dict[tuple[Any, ...], tuple[str, str, str | None]] = {}
_LIMIT_TEXTS_SIZE = 1024


def limit_texts(low: Any, high: Any, limits: Mapping[str, Any] | None) -> tuple[str, str, str | None]:
    """``low`` and ``high`` as :func:`format_number` prints them (``""`` for None), and
    :func:`describe_limits` of ``limits`` (None without limits): a measurement's JUnit properties.

    Cached by value: a suite judges the same few limits over and over; on a
    :class:`LimitsDict` for the ``low`` and ``high`` it was last asked with.
    """
    if type(limits) is LimitsDict:
        kept = limits.texts
        if kept is not None and kept[0] is low and kept[1] is high:
            return kept[2]
        made = limit_texts(low, high, dict(limits))
        limits.texts = (low, high, made)
        return made
    texts: tuple[str, str, str | None] | None
    try:
        key = (
            type(low),
            low,
            type(high),
            high,
            limits_key(limits) if limits else None,
            low == 0 and math.copysign(1.0, low),  # 0.0 and -0.0 are equal keys but print "0" and "-0"
            high == 0 and math.copysign(1.0, high),
        )
        texts = _LIMIT_TEXTS.get(key)
    except TypeError:  # an unhashable value (a list in ``equals``): not cached
        key, texts = None, None
    if texts is None:
        texts = (
            "" if low is None else format_number(low),
            "" if high is None else format_number(high),
            describe_limits(limits) if limits else None,
        )
        if key is not None:
            if len(_LIMIT_TEXTS) >= _LIMIT_TEXTS_SIZE:
                _LIMIT_TEXTS.clear()
            _LIMIT_TEXTS[key] = texts
    return texts
