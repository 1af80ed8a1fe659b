"""Argument types the ``litmus`` commands share (not a command: ``_``).

Each refuses what would be silently wrong (a negative count, a NaN timeout, a
port outside 0..65535) with argparse's usual one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["count", "port", "positive_seconds", "seconds", "seq"]


def _int(text: str, what: str, ok: Callable[[int], bool]) -> int:
    """``text`` as an integer for which ``ok`` holds, else argparse's error naming ``what`` was expected."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _float(text: str, what: str, ok: Callable[[float], bool]) -> float:
    """``text`` as a finite number for which ``ok`` holds, else argparse's error naming ``what`` was expected."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def count(text: str) -> int:
    """A count of things to show: an integer >= 1."""
    return _int(text, "a count >= 1", lambda n: n >= 1)


def seq(text: str) -> int:
    """An event number: an integer >= 0."""
    return _int(text, "an event number >= 0", lambda n: n >= 0)


def seconds(text: str) -> float:
    """A duration: finite seconds >= 0."""
    return _float(text, "seconds >= 0", lambda x: x >= 0)


def positive_seconds(text: str) -> float:
    """A duration that must pass: finite seconds > 0."""
    return _float(text, "seconds > 0", lambda x: x > 0)


def port(text: str) -> int:
    """A TCP port: 1..65535, or 0 for a free one."""
    return _int(text, "a TCP port 1..65535 (0: a free one)", lambda n: 0 <= n <= 65535)
