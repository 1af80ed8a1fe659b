"""Fault injection: every kind through plain PyVISA, from the file and at run time, and a
``--mock`` session whose driver's error path is exercised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.errors import NotSimulated, StationConfigError
from pytest_litmus.sim import device_of, resource_manager
from tests.sim.conftest import DMM_SIM, GPIB

IDN = "LITMUS,SIM-DMM,0,1.0"
TIMEOUT = constants.StatusCode.error_timeout
CONN_LOST = constants.StatusCode.error_connection_lost


def visa_error(call: Any) -> int:
    with pytest.raises(VisaIOError) as info:
        call()
    return int(info.value.error_code)


# -- each kind, at run time -------------------------------------------------------------


def test_timeout_loses_one_answer_then_the_instrument_answers_again(dmm: Any) -> None:
    dmm.timeout = 50
    device_of(dmm).inject("timeout", count=1)
    assert visa_error(lambda: dmm.query("*IDN?")) == TIMEOUT
    assert dmm.query("*IDN?") == IDN
    assert not device_of(dmm).hooked, "an expired fault costs nothing"


def test_timeout_only_on_its_command_and_after_n(dmm: Any) -> None:
    dmm.timeout = 50
    device_of(dmm).inject("timeout", on="read?", after=1)
    assert dmm.query("READ?") == "1.234567", "after=1: the first passes"
    assert dmm.query("*IDN?") == IDN, "another command is untouched"
    assert visa_error(lambda: dmm.query("READ?")) == TIMEOUT
    assert visa_error(lambda: dmm.query("READ?")) == TIMEOUT, "no count: for ever"
    device_of(dmm).clear_faults()
    assert dmm.query("READ?") == "1.234567"


def test_disconnect_fails_every_later_io_with_conn_lost(dmm: Any) -> None:
    device = device_of(dmm)
    device.inject("disconnect", after=2)
    dmm.write("*CLS")
    dmm.write("*CLS")
    assert visa_error(lambda: dmm.write("*IDN?")) == CONN_LOST, "the third command drops the connection"
    assert device.faults.disconnected, "the flag a front door checks"
    for call in (dmm.read, lambda: dmm.query("*IDN?"), dmm.read_stb, dmm.clear, dmm.assert_trigger):
        assert visa_error(call) == CONN_LOST
    device.clear_faults()
    assert dmm.query("*IDN?") == IDN


def test_disconnect_wakes_a_waiting_read(dmm: Any) -> None:
    import threading
    import time

    dmm.timeout = 60_000
    failed: list[int] = []
    reader = threading.Thread(target=lambda: failed.append(visa_error(dmm.read)), daemon=True)
    device = device_of(dmm)
    reader.start()
    while not device.cond._waiters:  # type: ignore[attr-defined]  # until the reader waits for output
        time.sleep(0.001)
    device.inject("disconnect")
    reader.join(timeout=30)
    assert failed == [CONN_LOST]


def test_idn_answers_wrong(dmm: Any) -> None:
    device_of(dmm).inject("idn", answer="OTHER CO,METER,1,2", count=1)
    assert dmm.query("READ?") == "1.234567", "only *IDN? counts"
    assert dmm.query("*IDN?") == "OTHER CO,METER,1,2"
    assert dmm.query("*IDN?") == IDN


def test_drift_per_call_and_per_second(dmm: Any) -> None:
    device = device_of(dmm)
    now = [100.0]
    device.faults.clock = lambda: now[0]
    device.inject("drift", on="FETC?", offset=0.5, per_call=0.01, per_second=1.0)
    assert dmm.query("FETC?") == "1.75,1.76,1.74"
    now[0] = 102.0
    assert dmm.query("FETC?") == "3.76,3.77,3.75"
    assert dmm.query("READ?") == "1.234567", "another query does not drift"
    assert dmm.query("*IDN?") == IDN


def test_drift_leaves_a_non_numeric_answer_alone(dmm: Any) -> None:
    device_of(dmm).inject("drift", offset=1)
    assert dmm.query("*IDN?") == IDN
    assert dmm.query("VOLT:RANG?") == "11"


@pytest.mark.parametrize(
    ("error", "esr"),
    [('-222,"Data out of range"', 0x10), ('-113,"Undefined header"', 0x20), ('+201,"Custom"', 0x08)],
)
def test_error_on_the_nth_command(dmm: Any, error: str, esr: int) -> None:
    device_of(dmm).inject("error", after=2, error=error)
    dmm.write("*CLS;*CLS")
    assert dmm.query("SYST:ERR?") == '0,"No error"'
    dmm.write("CONF:RES")
    assert int(dmm.query("*ESR?")) == esr
    assert dmm.query("SYST:ERR?") == error
    assert dmm.query("SYST:ERR?") == '0,"No error"', "count defaults to once"


@pytest.mark.parametrize(
    ("kind", "params", "key"),
    [
        ("meltdown", {}, "inject('meltdown').kind"),
        ("timeout", {"count": 0}, "inject('timeout').count"),
        ("timeout", {"after": -1}, "inject('timeout').after"),
        ("timeout", {"after": True}, "inject('timeout').after"),
        ("timeout", {"answer": "x"}, "inject('timeout').answer"),
        ("idn", {"answer": "two\nlines"}, "inject('idn').answer"),
        ("drift", {"offset": "1"}, "inject('drift').offset"),
        ("drift", {"per_call": float("nan")}, "inject('drift').per_call"),
        ("error", {"on": ""}, "inject('error').on"),
    ],
)
def test_bad_inject_arguments_name_the_argument(dmm: Any, kind: str, params: dict[str, Any], key: str) -> None:
    with pytest.raises(StationConfigError) as info:
        device_of(dmm).inject(kind, **params)
    assert info.value.key == key
    assert not device_of(dmm).hooked


# -- device_of --------------------------------------------------------------------------


def test_device_of_a_resource_a_driver_and_the_device(rm: Any, dmm: Any) -> None:
    from pytest_litmus.drivers import Dmm

    device = rm.visalib.device(GPIB)
    assert device_of(dmm) is device
    assert device_of(Dmm(dmm)) is device
    assert device_of(device) is device


def test_device_of_what_is_not_simulated_here() -> None:
    import pyvisa
    from pyvisa_sim.highlevel import SimVisaLibrary

    plain = pyvisa.ResourceManager(SimVisaLibrary(str(DMM_SIM))).open_resource(GPIB)
    with pytest.raises(NotSimulated, match="SimVisaLibrary, not the litmus simulator"):
        device_of(plain)
    with pytest.raises(NotSimulated, match="no simulated instrument"):
        device_of(object())

    class Remote:  # what sharing.RemoteInstrument looks like: every attribute forwarded elsewhere
        _station = "holder"

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("would ask the holder")

    with pytest.raises(NotSimulated, match="held by another process") as info:
        device_of(Remote())
    assert isinstance(info.value, TypeError)


# -- from the simulation file -------------------------------------------------------------

FAULTY = """
spec: "1.1"
devices:
  dmm:
    eom: {{GPIB INSTR: {{q: "\\n", r: "\\n"}}}}
    dialogues:
      - {{q: "*IDN?", r: "ACME,DMM,1,1"}}
      - {{q: "READ?", r: "2.5"}}
    litmus:
      faults:
        - {{kind: drift, on: "READ?", per_call: 1}}
resources:
  GPIB0::5::INSTR:
    device: dmm
  GPIB0::6::INSTR:
    device: dmm
    litmus:
      faults: {faults}
"""


def faulty(tmp_path: Path, faults: str) -> Path:
    path = tmp_path / "faulty.yaml"
    path.write_text(FAULTY.format(faults=faults))
    return path


def test_file_faults_on_a_device_and_per_resource(tmp_path: Path) -> None:
    rm = resource_manager(faulty(tmp_path, '[{kind: idn, answer: "X,Y,Z,0", after: 1}]'))
    five = rm.open_resource("GPIB0::5::INSTR", read_termination="\n", write_termination="\n")
    six = rm.open_resource("GPIB0::6::INSTR", read_termination="\n", write_termination="\n")
    assert [five.query("READ?") for _ in range(3)] == ["2.5", "3.5", "4.5"]
    assert [six.query("*IDN?") for _ in range(2)] == ["ACME,DMM,1,1", "X,Y,Z,0"]
    assert six.query("READ?") == "2.5", "the resource's faults replace the device's"
    again = resource_manager(tmp_path / "faulty.yaml", fresh=True)  # a fresh simulator: its faults armed anew
    assert again.open_resource("GPIB0::5::INSTR", read_termination="\n").query("READ?") == "2.5"


@pytest.mark.parametrize(
    ("faults", "key", "expected"),
    [
        ("{kind: timeout}", "resources.GPIB0::6::INSTR.litmus.faults", "a list of faults"),
        ("[timeout]", "resources.GPIB0::6::INSTR.litmus.faults[0]", "a mapping with a kind"),
        ("[{kind: fire}]", "resources.GPIB0::6::INSTR.litmus.faults[0].kind", "one of timeout, disconnect"),
        ("[{kind: timeout, count: -1}]", "resources.GPIB0::6::INSTR.litmus.faults[0].count", "an integer >= 1"),
        ("[{}, {kind: error, eror: x}]", "resources.GPIB0::6::INSTR.litmus.faults[0].kind", "one of"),
        ("[{kind: error, eror: x}]", "resources.GPIB0::6::INSTR.litmus.faults[0].eror", "one of kind, on"),
        ("[{kind: drift, offset: .inf}]", None, None),
    ],
)
def test_bad_file_faults_name_file_key_and_expected(tmp_path: Path, faults: str, key: str, expected: str) -> None:
    path = faulty(tmp_path, faults)
    if key is None:  # infinity is a number: allowed
        resource_manager(path)
        return
    with pytest.raises(StationConfigError) as info:
        resource_manager(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert expected in info.value.expected


# -- a --mock pytest session: the driver's error path -------------------------------------


def test_a_mock_session_sees_each_fault_as_the_instrument_failing(station_project: pytest.Pytester) -> None:
    station = station_project.path / "stations" / "cell-7.yaml"
    station.write_text(station.read_text().replace("timeout_ms: 10000", "timeout_ms: 100"))
    station_project.makepyfile(
        """
        import pytest
        from pyvisa.errors import VisaIOError
        from pytest_litmus.errors import InstrumentError
        from pytest_litmus.sim import device_of

        @pytest.fixture(autouse=True)
        def no_faults_after(dmm):
            yield
            device_of(dmm).clear_faults()  # the simulated instrument lives for the session

        def test_reading_times_out(dmm):
            device_of(dmm).inject("timeout", on="MEAS:VOLT:DC?", count=1)
            dmm.measure_voltage()

        def test_connection_drops(dmm):
            device_of(dmm).inject("disconnect")
            dmm.idn()

        def test_wrong_instrument(dmm):
            device_of(dmm).inject("idn", answer="Other,Meter,0,0")
            assert "34465A" in dmm.idn()

        def test_drifting_rail(dmm, measure):
            device_of(dmm).inject("drift", on="MEAS:VOLT:DC?", offset=0.5)
            measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)

        def test_queued_error_is_caught_by_the_driver(dmm):
            device_of(dmm).inject("error", error='-222,"Data out of range"')
            dmm.write("*CLS")
            with pytest.raises(InstrumentError, match="-222, Data out of range"):
                dmm.check_errors()

        def test_the_next_test_gets_a_fresh_instrument(dmm):
            assert "34465A" in dmm.idn()
            assert dmm.measure_voltage() == pytest.approx(3.3012)
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_reading_times_out _*",
            "dmm = <InstrumentProxy dmm TCPIP0::192.168.1.50::inst0::INSTR Dmm>",
            "E * VI_ERROR_TMO *",
            "*_ test_connection_drops _*",
            "E * VI_ERROR_CONN_LOST *",
            "*_ test_wrong_instrument _*",
            "E * '34465A' in 'Other,Meter,0,0'",
            "*_ test_drifting_rail _*",
            "rail_3v3 = 3.8012 V, limits [[]3.2, 3.4]: 0.4012 V above high*",
        ],
        consecutive=False,
    )
