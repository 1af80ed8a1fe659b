"""``litmus emulate --station``: every role served, a derived station file, and the example suite through pyvisa-py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_litmus.config import load_station_file
from pytest_litmus.errors import StationConfigError
from pytest_litmus.sim.emustation import _ports, serve_station, write_station
from tests.test_bad_input_cli import assert_one_line_error, litmus

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
REPO = Path(__file__).resolve().parents[2]
CELL_7 = REPO / "stations" / "cell-7.yaml"

PROBE = """
def test_the_roles_are_on_pyvisa_py_over_hislip(dmm, psu):
    for role in (dmm, psu):
        resource = role.resource
        assert type(resource.visalib).__name__ == "PyVisaLibrary"
        assert "::hislip0," in resource.resource_name
        assert resource.read_stb() in range(256)  # a serial poll over the async channel
"""


def test_the_example_suite_passes_on_the_emulated_station_through_pyvisa_py(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITMUS_")}
    derived = tmp_path / "data" / "stations" / "cell-7-lan.yaml"
    emulate = subprocess.Popen(
        [sys.executable, "-m", "pytest_litmus.cli", "emulate", "--station", "cell-7", "--write", str(derived)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert emulate.stdout is not None
    try:
        lines = [emulate.stdout.readline().split() for _ in range(2)]
        assert [line[0] for line in lines] == ["dmm", "psu"], lines
        assert all(line[1].startswith("TCPIP0::127.0.0.1::hislip0,") for line in lines)
        assert all(line[2].endswith("::SOCKET") for line in lines)
        station = load_station_file(derived)
        assert station.visa_library == "@py"
        assert [station.role(r).resource for r in ("dmm", "psu")] == [line[1] for line in lines]
        probe = tmp_path / "probe" / "test_probe.py"
        probe.parent.mkdir()
        probe.write_text(PROBE)
        run = subprocess.run(
            [*PYTEST, "examples", str(probe), "--station", "cell-7-lan", "--litmus-data-dir", str(tmp_path / "data")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "7 passed" in run.stdout, run.stdout  # the 6 example tests and the probe
    finally:
        emulate.send_signal(signal.SIGTERM)
        _out, err = emulate.communicate(timeout=60)
    assert emulate.returncode == 0, err


def test_each_role_gets_its_own_ports_and_a_valid_derived_station(tmp_path: Path) -> None:
    station = load_station_file(CELL_7)
    emulators = serve_station(station)
    try:
        ports = {e.address[1] for e in emulators.values()} | {e.hislip_address[1] for e in emulators.values()}  # type: ignore[index]
        assert len(ports) == 4
        assert {e.resource for e in emulators.values()} == {"TCPIP0::192.168.1.50::inst0::INSTR", "GPIB0::17::INSTR"}
        derived = write_station(station, emulators, tmp_path / "cell-7-emu.yaml")
        assert derived.id == "cell-7-emu" and derived.simulation == station.simulation
        assert derived.role("dmm").read_termination == "\n" and derived.role("dmm").lock == "exclusive"
    finally:
        for emulator in emulators.values():
            emulator.close()


def test_consecutive_ports_and_their_limit() -> None:
    assert _ports(5025, 3, "--port") == [5025, 5026, 5027]
    assert _ports(0, 2, "--port") == [0, 0]
    assert _ports(65534, 2, "--port") == [65534, 65535]
    with pytest.raises(StationConfigError, match="--hislip-port"):
        _ports(65535, 2, "--hislip-port")


@pytest.mark.parametrize("name", ["cell.txt", "bad name.yaml"])
def test_write_refuses_a_file_that_cannot_be_a_station(tmp_path: Path, name: str) -> None:
    station = load_station_file(CELL_7)
    with pytest.raises(StationConfigError, match="--write"):
        write_station(station, {}, tmp_path / name)


def test_a_station_without_a_simulation_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "stations" / "bare.yaml"
    path.parent.mkdir()
    path.write_text("instruments:\n  dmm: {resource: 'GPIB0::9::INSTR'}\n")
    with pytest.raises(StationConfigError) as caught:
        serve_station(load_station_file(path))
    assert "simulation" in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([], ["SIMFILE", "--station"]),
        (["x.yaml", "--station", "cell-7"], ["SIMFILE", "--station"]),
        (["x.yaml", "--write", "y.yaml"], ["--write"]),
        (["--station", "cell-7", "--write", "out.txt"], ["--write"]),
        (["--station", "no-such-station"], ["no-such-station"]),
        (["x.yaml", "--max-message", "0"], ["--max-message"]),
    ],
)
def test_bad_emulate_arguments_are_one_line_errors(argv: list[str], names: list[str]) -> None:
    result = litmus("emulate", *argv, cwd=REPO)
    if result.returncode == 1:  # a station not found is a litmus error, not a usage error
        assert "Traceback" not in result.stderr and all(n in result.stderr for n in names), result.stderr
        return
    if "usage:" in result.stderr:
        assert result.returncode == 2 and all(n in result.stderr for n in names), result.stderr
        return
    assert_one_line_error(result, *names)
