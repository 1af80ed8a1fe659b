"""Fixtures of the example power-board suite: the board is powered for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def powered_board(psu: Any) -> Iterator[Any]:
    """Supply the board at 5 V with a 0.5 A limit; switch off after the last test."""
    psu.reset()
    psu.set_current(0.5)
    psu.set_voltage(5.0)
    psu.output(True)
    yield psu
    psu.output(False)
