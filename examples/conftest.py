"""Fixtures of the example power-board suite: the board is powered for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: Whether this process is a pytest-xdist worker: workers share the one supply the controller holds.
xdist_worker = False


def pytest_configure(config: pytest.Config) -> None:
    global xdist_worker
    xdist_worker = hasattr(config, "workerinput")


@pytest.fixture(scope="session")
def powered_board(psu: Any) -> Iterator[Any]:
    """Supply the board at 5 V with a 0.5 A limit; switch off after the last test.

    Under pytest-xdist the workers share the supply: each one sets it (the same
    settings, so the order does not matter) but none resets it or switches it
    off, which would pull the power from under another worker's test.
    """
    if not xdist_worker:
        psu.reset()
    psu.set_current(0.5)
    psu.set_voltage(5.0)
    psu.output(True)
    yield psu
    if not xdist_worker:
        psu.output(False)
