"""connect() and StationConnection outside pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_litmus import LitmusError, StationConfigError, StationConnection, UnknownRole, connect
from pytest_litmus.events import read_session


def types_of(station: StationConnection) -> list[str]:
    return [e["type"] for e in read_session(station.event_log).events]


def test_context_manager_session_records_everything(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        dmm = station.instrument("dmm")
        assert station.instrument("dmm") is dmm
        volts = dmm.measure_voltage()
        station.measure("rail_3v3", volts, units="V", low=3.2, high=3.4)
        ref = station.observe("ambient", 23.5, units="degC")
        station.configure("psu", "set_voltage", volts=5.0)
    assert station.outcome == "passed"
    assert station.event_log == project / "home" / "sessions" / station.session_id / "events.jsonl"
    assert types_of(station) == [
        "SessionStarted",
        "InstrumentConnected",
        "InstrumentCall",
        "Measurement",
        "Observation",
        "InstrumentConfigure",
        "InstrumentDisconnected",
        "SessionEnded",
    ]
    started = station.events("SessionStarted")[0]
    for key in ("station", "host", "user", "pid", "argv", "versions", "mock"):
        assert key in started
    assert started["mock"] is True and started["versions"]["pyvisa-sim"]
    connected = station.events("InstrumentConnected", role="dmm")[0]
    assert connected["idn"].startswith("Keysight") and connected["driver"] == "pytest_litmus.drivers:Dmm"
    assert station.events("InstrumentConfigure")[0]["parameters"] == {"volts": 5.0}
    assert ref == f"channel://{station.session_id}/ambient#5"
    ended = station.events("SessionEnded")[0]
    assert ended["outcome"] == "passed" and ended["counts"] == {"measurements_passed": 1}


@pytest.mark.parametrize(
    ("exc", "outcome"), [(RuntimeError, "errored"), (KeyboardInterrupt, "terminated"), (SystemExit, "terminated")]
)
def test_outcome_comes_from_the_exception_type(project: Path, exc: type[BaseException], outcome: str) -> None:
    with pytest.raises(exc), connect("cell-7", mock=True) as station:
        station.instrument("psu")
        raise exc()
    assert station.outcome == outcome
    assert station.events("SessionEnded")[0]["outcome"] == outcome
    assert station.instruments == {}


def test_explicit_lifecycle_and_release(project: Path) -> None:
    station = connect("cell-7", mock=True, data_dir=project / "elsewhere")
    with pytest.raises(LitmusError, match="not running"):
        station.instrument("dmm")
    station.start()
    try:
        psu = station.instrument("psu")
        psu.set_voltage(3.0)
        station.release("psu")
        with pytest.raises(LitmusError, match="'psu' of station 'cell-7' was released"):
            psu.set_voltage(4.0)
        assert station.instrument("psu") is not psu
        with pytest.raises(UnknownRole, match="dmm, psu"):
            station.instrument("scope")
    finally:
        station.stop()
    assert station.event_log.is_relative_to(project / "elsewhere")
    with pytest.raises(LitmusError, match="already stopped"):
        station.start()
    station.stop()  # a second stop is a no-op


def test_every_session_starts_with_fresh_simulator_state(project: Path) -> None:
    with connect("cell-7", mock=True) as first:
        first.instrument("psu").set_voltage(12.0)
        assert first.instrument("psu").voltage_setpoint() == 12.0
    with connect("cell-7", mock=True) as second:
        assert second.instrument("psu").voltage_setpoint() == 0.0


def test_default_station_from_litmus_yaml(project: Path) -> None:
    (project / "litmus.yaml").write_text("default_station: cell-7\ndata_dir: data\n")
    with connect(mock=True) as station:
        assert station.config.id == "cell-7" and station.data_dir == project / "data"


def test_mock_without_a_simulation_file_is_a_config_error(project: Path) -> None:
    (project / "stations" / "bare.yaml").write_text("instruments:\n  dmm:\n    resource: GPIB0::1::INSTR\n")
    with pytest.raises(LitmusError, match=r"bare.yaml: simulation: expected a pyvisa-sim file"):
        connect("bare", mock=True)  # refused before anything starts


def test_a_resource_missing_from_the_simulation_names_role_and_file(project: Path) -> None:
    text = (project / "stations" / "cell-7.yaml").read_text().replace("GPIB0::17::INSTR", "GPIB0::29::INSTR")
    (project / "stations" / "cell-7.yaml").write_text(text)
    with pytest.raises(StationConfigError) as info:
        connect("cell-7", mock=True)  # refused before anything starts
    assert info.value.file == str(project / "stations" / "sims" / "cell-7.yaml")
    assert info.value.key == "resources" and "GPIB0::29::INSTR (role 'psu' of station 'cell-7')" in str(info.value)


def test_a_station_on_a_simulation_visa_library_runs_without_mock(project: Path) -> None:
    text = (
        (project / "stations" / "cell-7.yaml")
        .read_text()
        .replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim")
    )
    (project / "stations" / "sim-bench.yaml").write_text(text.replace("station: cell-7", "station: sim-bench"))
    with connect("sim-bench") as station:
        assert station.instrument("dmm").measure_voltage() == pytest.approx(3.3012)
        assert station.events("SessionStarted")[0]["mock"] is False


def test_subscribers_from_entry_points_and_registration(project: Path) -> None:
    seen: list[str] = []

    class Sub:
        def litmus_event(self, event: dict[str, object]) -> None:
            seen.append(str(event["type"]))

    station = connect("cell-7", mock=True)
    station.hooks.register(Sub())
    with station:
        station.observe("x", 1)
    assert seen == ["SessionStarted", "Observation", "SessionEnded"]


def test_srq_waiter_from_connect_and_its_timeout(project: Path) -> None:
    from pytest_litmus import SrqTimeout

    with connect("cell-7", mock=True) as station:
        dmm = station.instrument("dmm")
        waiter = station.srq("dmm")
        dmm.write("INIT")
        dmm.write("*OPC")
        assert waiter.wait(timeout=5) & 0x40
        quiet = station.srq(dmm)  # armed again, nothing started: no service request comes
        with pytest.raises(SrqTimeout) as info:
            quiet.wait(timeout=0.05)
        assert info.value.role == "dmm" and info.value.resource == "TCPIP0::192.168.1.50::inst0::INSTR"
    waits = station.events("SrqWait", role="dmm")
    assert [w["outcome"] for w in waits] == ["srq", "timeout"]
    assert {w["mechanism"] for w in waits} == {"event"}


def test_session_versions_match_the_installed_distributions() -> None:
    """``SessionStarted.versions`` takes imported modules' ``__version__``: it must be what is installed."""
    from importlib.metadata import version

    import pyvisa_sim  # noqa: F401 - imported, so its __version__ is used

    from pytest_litmus.holder import _VERSIONED, _versions

    found = _versions()
    for dist in _VERSIONED:
        assert found[dist] == version(dist), dist
