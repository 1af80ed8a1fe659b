"""How limits and numbers print in exports (stand-in for ``pytest_litmus.limits`` until branch ``limits`` merges)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_limits", "format_number"]


# TODO(limits): replace this module's two functions with
# ``from pytest_litmus.limits import describe_limits, format_number`` when branch ``limits`` merges.
def format_number(x: float | int) -> str:
    """A number as the terminal prints it: 12 significant digits (``3.3 * 1.01`` prints ``3.333``)."""
    return format(x, ".12g") if type(x) is not bool else str(x)


def describe_limits(limits: Mapping[str, Any] | None, low: float | None = None, high: float | None = None) -> str:
    """``[3.2, 3.4]``, ``(3.2, 3.4]``, ``3.3 ± 1%``, ``== 'OK'``, ``<= 5``; ``""`` when there are none.

    ``limits`` is a measurement's limits dict (docs/events.md); without one,
    ``low``/``high`` are inclusive bounds.
    """
    limits = limits or {}
    if limits.get("equals") is not None:
        return f"== {limits['equals']!r}"
    nominal: Any = limits.get("nominal")
    if _num(nominal) and _num(limits.get("tolerance_percent")):
        return f"{format_number(nominal)} ± {format_number(limits['tolerance_percent'])}%"
    if _num(nominal) and _num(limits.get("tolerance")):
        return f"{format_number(nominal)} ± {format_number(limits['tolerance'])}"
    lo = limits.get("low", low) if limits else low
    hi = limits.get("high", high) if limits else high
    lo, hi = (lo if _num(lo) else None), (hi if _num(hi) else None)
    lo_in, hi_in = limits.get("low_inclusive", True) is not False, limits.get("high_inclusive", True) is not False
    if lo is not None and hi is not None:
        return f"{'[' if lo_in else '('}{format_number(lo)}, {format_number(hi)}{']' if hi_in else ')'}"
    if lo is not None:
        return f"{'>=' if lo_in else '>'} {format_number(lo)}"
    if hi is not None:
        return f"{'<=' if hi_in else '<'} {format_number(hi)}"
    return ""


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
