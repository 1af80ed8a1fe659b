"""Resource managers for a station: the one seam between the product and the VISA stack.

``--mock`` and ``@sim`` specs get a simulator library of their own, with fresh
state, instead of pyvisa's per-process cached one; it becomes the file's current
simulator, which ``pytest_litmus.sim.resource_manager(path)`` joins. Everything else goes to
``pyvisa.ResourceManager`` as given. pyvisa is imported here, lazily, and
nowhere in the configuration or plugin start-up path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytest_litmus.config import simulation_of
from pytest_litmus.errors import LitmusError, StationConfigError

if TYPE_CHECKING:
    import pyvisa

    from pytest_litmus.sim.library import LitmusSimLibrary


def open_resource_manager(visa_library: str | None, *, simulation: Path | None = None) -> pyvisa.ResourceManager:
    """The resource manager a station's instruments open on.

    ``simulation`` (mock mode) wins over ``visa_library``; a ``visa_library``
    naming a simulation file (``/abs/sim.yaml@sim``) also gets a fresh simulator,
    made the file's current one (see docs/simulation.md, "starts fresh").
    """
    import pyvisa

    if simulation is None and visa_library:
        simulated = simulation_of(visa_library)
        simulation = Path(simulated) if simulated is not None else None
    if simulation is not None:
        return pyvisa.ResourceManager(_simulator(simulation))
    if visa_library:
        return pyvisa.ResourceManager(visa_library)
    return pyvisa.ResourceManager()


def _simulator(simulation: Path) -> LitmusSimLibrary:
    """A fresh simulator on ``simulation``; a file pyvisa-sim refuses is a :class:`StationConfigError`."""
    from pytest_litmus.sim.library import fresh_sim_library

    try:
        return fresh_sim_library(simulation)
    except LitmusError:
        raise
    except Exception as exc:  # pyvisa-sim's parse errors carry a formatted traceback: keep its last line
        lines = [line.strip() for line in str(exc).replace("\\n", "\n").splitlines() if line.strip()]
        reason = f"{type(exc).__name__}: {lines[-1] if lines else exc}"
        raise StationConfigError(
            simulation, "(simulation file)", "a simulation file pyvisa-sim can load", found=reason[:300]
        ) from None
