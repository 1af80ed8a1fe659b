"""What the plugin resolved for a run (:class:`Active`), and the keys it keeps things under.

One :class:`Active` per pytest process, in ``config.stash[ACTIVE]``: the station, settings, the
session's connection, this process's place under pytest-xdist and the running test. Beside it the
stash keys of a test's measurements, JUnit properties and failed lines, and the ``workerinput``
keys by which an xdist controller hands its workers the instrument server and their unit.
"""

from __future__ import annotations

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


class Active:
    """What the plugin resolved for this run (kept under :data:`ACTIVE`).

    A plain class, not a dataclass: defining one costs start-up time (docs/performance.md).
    """

    __slots__ = (
        "connection",
        "data_dir",
        "dut",
        "hooks",
        "item",
        "lock_timeout",
        "measured",
        "mock",
        "server_address",
        "server_file",
        "settings",
        "sources",
        "station",
        "units",
        "workers",
        "xdist",
    )

    def __init__(
        self,
        station: StationConfig,
        data_dir: Path,
        mock: bool,
        lock_timeout: float | None,
        sources: dict[str, str],
        hooks: LitmusPluginManager,
        connection: Station | None = None,
        xdist: Literal["off", "controller", "worker"] = "off",
        server_file: Path | None = None,
        server_address: str | None = None,
        workers: int = 1,
        item: pytest.Item | None = None,
        settings: Settings | None = None,
        dut: Dut | None = None,
        units: dict[str, Dut | None] | None = None,
    ) -> None:
        self.station = station
        self.data_dir = data_dir
        self.mock = mock
        self.lock_timeout = lock_timeout
        self.sources = sources
        self.hooks = hooks
        self.connection = connection
        #: This process under pytest-xdist: not distributing, the controller, or a worker.
        self.xdist = xdist
        #: A worker's: the controller's instrument server connection file, and how many workers there are.
        self.server_file = server_file
        #: The controller's: ``host:port`` of the instrument server the workers join.
        self.server_address = server_address
        self.workers = workers
        #: The test running now (set by :class:`PerTestPlugin`), to which ``measure`` attributes measurements.
        self.item = item
        #: The running attempt's measurements (also ``item.stash[MEASUREMENTS]``); None between tests.
        self.measured: list[Measurement] | None = None
        #: Every setting as resolved at configure time (the ``dut`` serials among them).
        self.settings = settings
        #: The unit this process tests (a worker's comes from the controller); the ``dut`` fixture.
        self.dut = dut
        #: The controller's: the unit of each xdist worker, by worker id.
        self.units: dict[str, Dut | None] = {} if units is None else units


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
