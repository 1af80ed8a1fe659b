"""A faithful instrument simulator: pyvisa-sim with VISA locks, the 488.2 status model and SRQ.

From plain PyVISA code, one line gives a resource manager on a simulation file,
with a fresh device state every time::

    rm = pytest_litmus.sim.resource_manager("sim.yaml")

See ``docs/simulation.md`` for the ``litmus:`` keys of simulation files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytest_litmus.sim.faults import device_of
from pytest_litmus.sim.library import LitmusSimLibrary
from pytest_litmus.sim.simfile import DeviceExtension, Operation, load_extensions

if TYPE_CHECKING:
    import pyvisa

__all__ = ["DeviceExtension", "LitmusSimLibrary", "Operation", "device_of", "load_extensions", "resource_manager"]


def resource_manager(simulation: str | Path | None = None) -> pyvisa.ResourceManager:
    """A ``pyvisa.ResourceManager`` on a fresh simulator for ``simulation``.

    With no file, pyvisa-sim's bundled ``default.yaml`` is simulated.
    """
    import pyvisa

    from pytest_litmus.sim.library import fresh_sim_library

    return pyvisa.ResourceManager(fresh_sim_library("unset" if simulation is None else simulation))
