"""What the export formats share: times, test names, values as text."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pytest_litmus.limits import format_number

__all__ = ["iso_time", "split_nodeid", "value_text"]


def iso_time(ts: float | None) -> str:
    """``2026-01-01T00:00:01.250+00:00`` (UTC, milliseconds); ``""`` for none."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return ""


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """``(classname, name)`` as pytest's JUnit XML writes them: ``tests.test_x.TestA``, ``test_b[1]``.

    As pytest's ``mangle_test_address``: the parameters (``[...]``, which may hold ``::``) stay with the name.
    """
    address, bracket, params = nodeid.partition("[")
    names = address.split("::")
    names[-1] += bracket + params
    path = names[0].removesuffix(".py").replace("/", ".").replace("\\", ".")
    if len(names) == 1:
        return "", names[0]
    return ".".join([path, *names[1:-1]]), names[-1]


def value_text(value: Any) -> str:
    """A measured value as text: numbers exact (``repr``), text as it is, anything else as JSON."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value) if math.isfinite(value) else format_number(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
