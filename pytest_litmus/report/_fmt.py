"""How numbers and limits print in reports (issue 11: as the terminal prints them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_limits", "format_number"]


def format_number(value: Any) -> str:
    """``format(x, ".12g")`` for real numbers (``3.3*1.01`` prints ``3.333``), ``str`` for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, ".12g")
    return str(value)


def describe_limits(limits: Mapping[str, Any] | None, low: Any = None, high: Any = None) -> str:
    """``[3.2, 3.4]``, ``(3.2, 3.4]``, ``3.3 ± 1%``, ``== 'OK'``, ``<= 5``; ``-`` without limits.

    TODO(limits): a stand-in for ``pytest_litmus.limits.describe_limits``; the lead swaps it at the merge.
    """
    d: Mapping[str, Any] = limits or {"low": low, "high": high}
    if d.get("equals") is not None:
        return f"== {d['equals']!r}"
    if d.get("nominal") is not None and d.get("tolerance_percent") is not None:
        return f"{format_number(d['nominal'])} ± {format_number(d['tolerance_percent'])}%"
    if d.get("nominal") is not None and d.get("tolerance") is not None:
        return f"{format_number(d['nominal'])} ± {format_number(d['tolerance'])}"
    lo, hi = d.get("low"), d.get("high")
    if lo is None and hi is None:
        return "-"
    if lo is None:
        return f"{'<=' if d.get('high_inclusive', True) else '<'} {format_number(hi)}"
    if hi is None:
        return f"{'>=' if d.get('low_inclusive', True) else '>'} {format_number(lo)}"
    left = "[" if d.get("low_inclusive", True) else "("
    right = "]" if d.get("high_inclusive", True) else ")"
    return f"{left}{format_number(lo)}, {format_number(hi)}{right}"
