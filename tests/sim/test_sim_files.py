"""Plain pyvisa-sim files keep working; the litmus: extension is validated like station files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pyvisa

from pytest_litmus.errors import StationConfigError
from pytest_litmus.sim import Operation, load_extensions, resource_manager
from tests.sim.conftest import DMM_SIM, GPIB, NO_SERIAL_POLL

HEADER = 'spec: "1.1"\ndevices:\n  d:\n    eom:\n      GPIB INSTR: {q: "\\n", r: "\\n"}\n'
RESOURCES = "resources:\n  GPIB0::1::INSTR: {device: d}\n"


def write_sim(tmp_path: Path, device_body: str) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(HEADER + device_body + RESOURCES, encoding="utf-8")
    return path


@pytest.mark.parametrize("library", ["sim", "litmus"])
def test_pyvisa_sim_default_yaml_behaves_the_same(library: str) -> None:
    """pyvisa-sim's own default.yaml: a status_register for *ESR? (command_error 32) and dialogues."""
    rm = pyvisa.ResourceManager("@sim") if library == "sim" else resource_manager(fresh=True)
    psu = rm.open_resource("GPIB::9::INSTR", read_termination="\n", write_termination="\n")
    gen = rm.open_resource("GPIB::8::INSTR", read_termination="\n", write_termination="\n")
    try:
        assert psu.query("*IDN?") == "SCPI,MOCK,VERSION_1.0"
        psu.query("*ESR?")  # plain pyvisa-sim keeps its state per process: start clean
        psu.write("NOT:A:COMMAND")
        assert psu.query("*ESR?") == "32"
        assert psu.query("*ESR?") == "0"
        assert gen.query("?IDN") == "LSG Serial #1234"
        assert gen.query("!FREQ 5.00") == "OK"
        assert gen.query("?FREQ") == "5.00"
        assert gen.query("!FREQ 0.50") == "FREQ_ERROR"
        assert gen.query("?FREQ") == "5.00"
    finally:
        rm.close()


def test_the_status_model_wins_over_file_dialogues_for_common_commands(tmp_path: Path) -> None:
    path = write_sim(
        tmp_path,
        '    dialogues:\n      - {q: "*ESR?", r: "+0"}\n      - {q: "*CLS"}\n      - {q: "*IDN?", r: "X,Y,1,2"}\n',
    )
    rm = resource_manager(path, fresh=True)
    inst = rm.open_resource("GPIB0::1::INSTR", read_termination="\n", write_termination="\n")
    inst.write("*OPC")
    assert inst.query("*ESR?") == "1", "the model answers *ESR?, not the file's fixed +0"
    assert inst.query("*IDN?") == "X,Y,1,2", "everything else is the file's"
    rm.close()


def test_a_file_error_queue_answers_syst_err(tmp_path: Path) -> None:
    path = write_sim(
        tmp_path,
        "    error:\n      response: {command_error: ERR}\n"
        '      error_queue:\n        - {q: "SYST:ERR?", default: "0, No error", command_error: "-100, Command error"}\n',
    )
    rm = resource_manager(path, fresh=True)
    inst = rm.open_resource("GPIB0::1::INSTR", read_termination="\n", write_termination="\n")
    assert inst.query("FOO") == "ERR"
    assert inst.query("SYST:ERR?") == "-100, Command error"
    assert inst.query("SYST:ERR?") == "0, No error"
    assert inst.query("*ESR?") == "32"
    assert not inst.read_stb() & 0x04, "the file keeps the queue: no EAV from the model's"
    rm.close()


def test_extension_is_read_per_device_and_per_resource() -> None:
    extensions = load_extensions(DMM_SIM)
    assert extensions[GPIB].operation_for("INIT") == Operation("INIT", 0.02)
    assert extensions[GPIB].operation_for("init 5") is not None
    assert extensions[GPIB].service_requests and extensions[GPIB].serial_poll
    assert not extensions[NO_SERIAL_POLL].serial_poll
    assert extensions[NO_SERIAL_POLL].operation_for("INIT") is not None


@pytest.mark.parametrize(
    ("litmus", "key", "expected"),
    [
        ("{operations: {INIT: -1}}", "devices.d.litmus.operations.INIT", "a duration in seconds"),
        ("{operations: {INIT: soon}}", "devices.d.litmus.operations.INIT", "a duration in seconds"),
        ("{operations: {INIT: {secs: 1}}}", "devices.d.litmus.operations.INIT.secs", "one of seconds"),
        ("{operations: {INIT: {device_error: x}}}", "devices.d.litmus.operations.INIT.seconds", "a duration"),
        ("{operations: [INIT]}", "devices.d.litmus.operations", "a mapping of command to seconds"),
        ("{service_requests: maybe}", "devices.d.litmus.service_requests", "true or false"),
        ("{delay: 1}", "devices.d.litmus.delay", "one of operations"),
        ("[1]", "devices.d.litmus", "a mapping"),
    ],
)
def test_extension_mistakes_name_file_key_and_expectation(tmp_path: Path, litmus: str, key: str, expected: str) -> None:
    path = write_sim(tmp_path, f"    litmus: {litmus}\n")
    with pytest.raises(StationConfigError) as info:
        resource_manager(path, fresh=True)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert info.value.expected.startswith(expected)
    assert str(path) in str(info.value)


def test_resource_level_mistakes_name_the_resource(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(HEADER + "resources:\n  GPIB0::1::INSTR: {device: d, litmus: {serial_poll: 1}}\n", encoding="utf-8")
    with pytest.raises(StationConfigError) as info:
        load_extensions(path)
    assert info.value.key == "resources.GPIB0::1::INSTR.litmus.serial_poll"


def test_runtime_switch_turns_events_off(rm: Any) -> None:
    rm.visalib.device(GPIB).service_requests = False
    inst = rm.open_resource(GPIB)
    with pytest.raises(pyvisa.errors.VisaIOError):
        inst.enable_event(pyvisa.constants.EventType.service_request, pyvisa.constants.EventMechanism.queue)
