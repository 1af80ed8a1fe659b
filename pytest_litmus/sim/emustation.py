"""``litmus emulate --station ID``: every role of a station on its own emulator, and the station file to reach them.

Each role of the station's ``simulation:`` file is served by an
:class:`~pytest_litmus.sim.emulate.Emulator` of its own (SOCKET and HiSLIP,
consecutive ports from ``--port`` / ``--hislip-port``, or free ones).
:func:`write_station` writes a *derived* station file: the same station with
each role's ``resource`` the emulator's HiSLIP resource and ``visa_library:
"@py"``, so ``pytest --station <derived>`` runs the station's tests through
pyvisa-py's real network stack. The station file itself is never changed, so
``--mock`` stays self-contained (no emulator needed).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import write_bytes
from pytest_litmus.config import StationConfig, check_station_id, load_station_file, simulation_of
from pytest_litmus.errors import StationConfigError
from pytest_litmus.sim.doors import MAX_MESSAGE
from pytest_litmus.sim.emulate import LOOPBACK, Emulator
from pytest_litmus.yamlfile import read_yaml

__all__ = ["serve_station", "station_simulation", "write_station"]


def station_simulation(station: StationConfig) -> Path:
    """The simulation file the station's roles are emulated from: ``simulation:``, else a ``file.yaml@sim`` library."""
    if station.simulation is not None:
        return station.simulation
    simulated = simulation_of(station.visa_library)
    if simulated is not None:
        return Path(simulated)
    raise StationConfigError(station.path, "simulation", "a pyvisa-sim file to emulate the roles from", has_got=False)


def _ports(first: int, count: int, option: str) -> list[int]:
    if first == 0:
        return [0] * count
    if not 0 < first <= 65536 - count:
        raise StationConfigError(None, option, f"a first port with {count} consecutive ports up to 65535", first)
    return [first + n for n in range(count)]


def serve_station(
    station: StationConfig,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    hislip_port: int = 0,
    max_message: int = MAX_MESSAGE,
) -> dict[str, Emulator]:
    """An emulator per role (not yet serving: call ``start()``), role -> emulator; all closed if one fails."""
    simulation = station_simulation(station)
    roles = station.roles
    ports = _ports(port, len(roles), "--port")
    hislip_ports = _ports(hislip_port, len(roles), "--hislip-port")
    emulators: dict[str, Emulator] = {}
    try:
        for role, socket_port, hislip in zip(roles, ports, hislip_ports, strict=True):
            resource = station.role(role).resource
            emulators[role] = Emulator(
                simulation, resource=resource, host=host, port=socket_port, hislip_port=hislip, max_message=max_message
            )
    except BaseException:
        for emulator in emulators.values():
            emulator.close()
        raise
    return emulators


def write_station(station: StationConfig, emulators: dict[str, Emulator], path: Path) -> StationConfig:
    """Write the derived station file ``path`` (its id: the file's stem) and load it back (it must be valid)."""
    if path.suffix != ".yaml":
        raise StationConfigError(None, "--write", "a station file name ending in .yaml (its stem is the id)", str(path))
    station_id = check_station_id(path.stem, "--write")
    data: Any = copy.deepcopy(read_yaml(station.path))
    data["station"] = station_id
    data["description"] = f"{station.id} on litmus emulate (pyvisa-py over HiSLIP); {station.description}".rstrip("; ")
    data["simulation"] = str(station_simulation(station).resolve())  # --mock on the derived station still works
    data["visa_library"] = "@py"
    limits = data.get("limits")
    if isinstance(limits, str):
        data["limits"] = str((station.path.parent / Path(limits.strip()).expanduser()).resolve())
    for role, emulator in emulators.items():
        data["instruments"][role]["resource"] = emulator.hislip_resource
    text = f"# Written by `litmus emulate --station {station.id}` from {station.path}: valid while it runs.\n" + _dump(
        data
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, text.encode())
    return load_station_file(path)


def _dump(data: Any) -> str:
    """YAML with strings that hold control characters (terminations) double-quoted: ``"\\n"``, not a block."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = '"' if any(ord(c) < 0x20 for c in value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, string)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)
