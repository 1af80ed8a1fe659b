"""Fixtures of the example power-board suite: the board is powered for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

#: Under pytest-xdist every worker runs session fixtures, on the one supply the controller holds.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


@pytest.fixture(scope="session")
def powered_board(psu: Any) -> Iterator[Any]:
    """Supply the board at 5 V with a 0.5 A limit; switch off after the last test.

    Under pytest-xdist the workers share the supply: each one sets it (the same
    settings, so the order does not matter) but none resets it or switches it
    off, which would pull the power from under another worker's test.
    """
    if XDIST_WORKER is None:
        psu.reset()
    psu.set_current(0.5)
    psu.set_voltage(5.0)
    psu.output(True)
    yield psu
    if XDIST_WORKER is None:
        psu.output(False)
