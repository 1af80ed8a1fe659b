"""Test files and helpers shared by the plugin tests (plain and under pytest-xdist)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_litmus.events import read_session


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (``*`` still matches)."""
    return pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")


def session_events(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    """The events of the one session the run wrote: complete, no torn or bad line."""
    (path,) = (pytester.path / "home" / "sessions").glob("*/events.jsonl")
    log = read_session(path)
    assert log.complete and not log.torn and log.bad_lines == 0
    return log.events


#: One test of each outcome, with instrument calls and a measurement.
OUTCOMES = """
import pytest

def test_pass(dmm):
    dmm.measure_voltage()

def test_fail(psu):
    psu.set_voltage(1.0)
    assert False, "rail never came up"

@pytest.mark.skip(reason="no fixture on this cell")
def test_skip():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_error(broken):
    pass

@pytest.mark.xfail(reason="known")
def test_xfail(measure):
    measure("v", 9.0, high=1.0)

@pytest.mark.xfail(reason="fixed since", strict=False)
def test_xpass():
    pass
"""
