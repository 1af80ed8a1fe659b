"""What the plugin resolved for a run (:class:`Active`), and the keys it keeps things under.

One :class:`Active` per pytest process, in ``config.stash[ACTIVE]``: the station, settings, the
session's connection, this process's place under pytest-xdist and the running test. Beside it the
stash keys of a test's measurements, JUnit properties and failed lines, and the ``workerinput``
keys by which an xdist controller hands its workers the instrument server and their unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

if TYPE_CHECKING:
    from pytest_litmus.config import StationConfig
    from pytest_litmus.dut import Dut
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.settings import Settings
    from pytest_litmus.station import Station


@dataclass
class Active:
    """What the plugin resolved for this run (kept under :data:`ACTIVE`)."""

    station: StationConfig
    data_dir: Path
    mock: bool
    lock_timeout: float | None
    sources: dict[str, str]
    hooks: LitmusPluginManager
    connection: Station | None = None
    #: This process under pytest-xdist: not distributing, the controller, or a worker.
    xdist: Literal["off", "controller", "worker"] = "off"
    #: A worker's: the controller's instrument server connection file, and how many workers there are.
    server_file: Path | None = None
    #: The controller's: ``host:port`` of the instrument server the workers join.
    server_address: str | None = None
    workers: int = 1
    #: The test running now (set by :class:`PerTestPlugin`), to which ``measure`` attributes measurements.
    item: pytest.Item | None = None
    #: Every setting as resolved at configure time (the ``dut`` serials among them).
    settings: Settings | None = None
    #: The unit this process tests (a worker's comes from the controller); the ``dut`` fixture.
    dut: Dut | None = None
    #: The controller's: the unit of each xdist worker, by worker id.
    units: dict[str, Dut | None] = field(default_factory=dict)


ACTIVE = pytest.StashKey[Active]()
MEASUREMENTS = pytest.StashKey[list["Measurement"]]()
#: The JUnit properties this plugin added to a test (taken back when the attempt is superseded).
PROPERTIES = pytest.StashKey[list[tuple[str, object]]]()
#: The running attempt's failed measurements, one line each (``Measurement.failure_line``).
FAILED_LINES = pytest.StashKey[list[str]]()

#: The ``workerinput`` key that carries the controller's connection file to xdist workers.
WORKERINPUT_KEY = "litmus_server_file"
#: The ``workerinput`` key that carries a worker's unit under test (serial, part, unit attempt).
WORKERINPUT_DUT = "litmus_dut"
