"""Resource managers for a station: the one seam between the product and the VISA stack.

``--mock`` and ``@sim`` specs get a simulator library of their own, with fresh
state, instead of pyvisa's per-process cached one; everything else goes to
``pyvisa.ResourceManager`` as given. pyvisa is imported here, lazily, and
nowhere in the configuration or plugin start-up path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyvisa
    from pyvisa.highlevel import VisaLibraryBase

_SIM_BACKENDS = ("sim",)
_registry_lock = threading.Lock()


def fresh_sim_library(simulation: str | Path) -> VisaLibraryBase:
    """A simulator library on ``simulation`` with its own, fresh device state.

    The library is :class:`pytest_litmus.sim.LitmusSimLibrary` (pyvisa-sim plus
    VISA locks, the IEEE 488.2 status model and service requests), so mock and
    ``@sim`` stations both get locks and SRQ.

    pyvisa caches libraries per (class, path) for the life of the process, so a
    second session on the same file would see the first one's state (and a
    ``ResourceManager`` bound to it). Constructing outside that cache gives each
    session its own.
    """
    from pyvisa.highlevel import VisaLibraryBase
    from pyvisa.util import LibraryPath

    from pytest_litmus.sim.library import LitmusSimLibrary

    cls = LitmusSimLibrary
    key = (cls, LibraryPath(str(simulation), "user specified"))
    with _registry_lock:
        VisaLibraryBase._registry.pop(key, None)
        library = cls(str(simulation))
        VisaLibraryBase._registry.pop(key, None)
    return library


def simulation_of(visa_library: str | None) -> str | None:
    """The simulation file a ``visa_library`` spec names (``/abs/sim.yaml@sim``), else None."""
    argument, _, backend = (visa_library or "").rpartition("@")
    return argument if backend in _SIM_BACKENDS and argument else None


def open_resource_manager(visa_library: str | None, *, simulation: Path | None = None) -> pyvisa.ResourceManager:
    """The resource manager a station's instruments open on.

    ``simulation`` (mock mode) wins over ``visa_library``; a ``visa_library``
    naming a simulation file (``/abs/sim.yaml@sim``) also gets a fresh simulator.
    """
    import pyvisa

    if simulation is not None:
        return pyvisa.ResourceManager(fresh_sim_library(simulation))
    if visa_library:
        simulated = simulation_of(visa_library)
        if simulated is not None:
            return pyvisa.ResourceManager(fresh_sim_library(simulated))
        return pyvisa.ResourceManager(visa_library)
    return pyvisa.ResourceManager()
