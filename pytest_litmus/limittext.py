"""How litmus prints numbers and limits: the terminal, the reports, JUnit properties and exports agree.

``format_number`` writes a number with 12 significant digits (``3.3*1.01`` -> ``3.333``);
``describe_limits`` writes a limits dict as ``[3.2, 3.4]``, ``3.3 ± 1%``, ``== 'OK'``;
``limit_texts`` gives both for a measurement, cached by value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

__all__ = ["describe_limits", "format_number", "limit_texts", "limits_key"]


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

    Cached by value: a suite judges the same few limits over and over.
    """
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
