"""Argument types the ``litmus`` commands share (not a command: ``_``).

Each refuses what would be silently wrong (a negative count, a NaN timeout, a
port outside 0..65535) with argparse's usual one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["count", "port", "positive_seconds", "seconds", "seq"]


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def count(text: str) -> int:
    """A count of things to show: an integer >= 1."""
    value = _int(text, "a count >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {text!r}")
    return value


def seq(text: str) -> int:
    """An event number: an integer >= 0."""
    value = _int(text, "an event number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an event number >= 0, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration: finite seconds >= 0."""
    value = _float(text, "seconds >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A duration that must pass: finite seconds > 0."""
    value = _float(text, "seconds > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port: 1..65535, or 0 for a free one."""
    value = _int(text, "a TCP port 1..65535 (0: a free one)")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1..65535 (0: a free one), got {text!r}")
    return value
