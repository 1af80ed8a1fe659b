"""A faithful instrument simulator: pyvisa-sim with VISA locks, the 488.2 status model and SRQ.

From plain PyVISA code, one line gives a resource manager on a simulation file::

    rm = pytest_litmus.sim.resource_manager("sim.yaml")

It joins the instruments already simulated for that file in this process (the
running pytest session's, a ``connect()`` holder's), or starts them if there are
none; ``fresh=True`` starts new ones. See ``docs/simulation.md``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_litmus.sim.faults import device_of
from pytest_litmus.sim.library import LitmusSimLibrary
from pytest_litmus.sim.simfile import DeviceExtension, Operation, load_extensions

if TYPE_CHECKING:
    import pyvisa

__all__ = ["DeviceExtension", "LitmusSimLibrary", "Operation", "device_of", "load_extensions", "resource_manager"]

_NEW_RM = threading.Lock()


def resource_manager(simulation: str | Path | None = None, *, fresh: bool = False) -> pyvisa.ResourceManager:
    """A ``pyvisa.ResourceManager`` of its own on the current simulator of ``simulation``.

    Every resource manager on the same file (and every resource string) in this
    process sees one instrument: its settings, status registers, queues and
    locks. The simulator starts fresh with each pytest session, each
    ``connect()`` holder, each emulator, and here when ``fresh`` is true or none
    exists yet. With no file, pyvisa-sim's bundled ``default.yaml`` is simulated.
    Closing the returned manager closes only the sessions opened through it.
    """
    import pyvisa

    from pytest_litmus.sim.library import current_sim_library, fresh_sim_library

    path = "unset" if simulation is None else simulation
    library = fresh_sim_library(path) if fresh else current_sim_library(path)
    # pyvisa hands out one ResourceManager per library; a VISA viOpenDefaultRM gives a new session each time
    with _NEW_RM:
        previous, library.resource_manager = library.resource_manager, None
        try:
            manager = pyvisa.ResourceManager(library)
        finally:
            if previous is not None:
                library.resource_manager = previous
    return manager
