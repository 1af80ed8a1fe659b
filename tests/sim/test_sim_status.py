"""The simulated IEEE 488.2 status model, bit by bit, through plain PyVISA."""

from __future__ import annotations

from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.sim.status import StatusModel

OPC, QYE, DDE, EXE, CME = 0x01, 0x04, 0x08, 0x10, 0x20
EAV, MAV, ESB, RQS = 0x04, 0x10, 0x20, 0x40


def esr(dmm: Any) -> int:
    return int(dmm.query("*ESR?"))


def stb(dmm: Any) -> int:
    return int(dmm.query("*STB?"))


def test_power_on_state_is_all_clear(dmm: Any) -> None:
    assert [dmm.query(q) for q in ("*ESR?", "*ESE?", "*SRE?", "*STB?")] == ["0", "0", "0", "0"]
    assert dmm.read_stb() == 0


def test_enable_registers_read_back(dmm: Any) -> None:
    dmm.write("*ESE 61")
    dmm.write("*SRE 255")
    assert dmm.query("*ESE?") == "61"
    assert dmm.query("*SRE?") == "191", "SRE bit 6 is ignored and reads back 0"


def test_opc_sets_bit0_and_esr_query_clears_it(dmm: Any) -> None:
    dmm.write("*OPC")
    assert esr(dmm) == OPC
    assert esr(dmm) == 0


def test_unknown_command_is_a_command_error_with_a_queued_scpi_error(dmm: Any) -> None:
    dmm.write("BOGUS:CMD")
    assert dmm.read() == "ERROR", "the file's error response is still answered"
    assert dmm.read_stb() & EAV
    assert esr(dmm) == CME
    assert dmm.query("SYST:ERR?") == '-113,"Undefined header"'
    assert dmm.query("SYST:ERR?") == '0,"No error"'
    assert not dmm.read_stb() & EAV


def test_out_of_range_setting_is_an_execution_error_not_a_command_error(dmm: Any) -> None:
    dmm.write("VOLT:RANG 5000")
    assert dmm.read() == "ERROR"
    assert esr(dmm) == EXE
    dmm.write("VOLT:RANG 100")
    assert dmm.query("VOLT:RANG?") == "100"
    assert esr(dmm) == 0


def test_reading_with_nothing_to_send_is_a_query_error(dmm: Any) -> None:
    dmm.timeout = 1
    with pytest.raises(VisaIOError) as info:
        dmm.read()
    assert info.value.error_code == constants.StatusCode.error_timeout
    dmm.timeout = 2000
    assert esr(dmm) == QYE


def test_a_failing_operation_is_a_device_error(dmm: Any) -> None:
    dmm.write("TST:FAIL")
    assert dmm.query("*OPC?") == "1"
    assert esr(dmm) == DDE
    assert dmm.query("SYST:ERR?") == '-330,"Self-test failed"'


def test_esb_follows_esr_and_ese(dmm: Any) -> None:
    dmm.write("*OPC")
    assert not stb(dmm) & ESB, "ESE is 0: ESR bits do not reach the status byte"
    dmm.write("*ESE 1")
    assert stb(dmm) & ESB
    dmm.write("*ESE 0")
    assert not stb(dmm) & ESB


def test_mav_is_set_while_an_answer_waits_to_be_read(dmm: Any) -> None:
    dmm.write("*IDN?")
    assert dmm.read_stb() & MAV
    assert dmm.read().startswith("LITMUS")
    assert not dmm.read_stb() & MAV


def test_serial_poll_clears_rqs_but_not_mss(dmm: Any) -> None:
    dmm.write("*ESE 1")
    dmm.write("*SRE 32")
    dmm.write("*OPC")
    assert dmm.read_stb() == RQS | ESB
    assert dmm.read_stb() == ESB, "RQS is cleared by the serial poll"
    assert stb(dmm) == RQS | ESB, "*STB? reports MSS, still true"
    assert esr(dmm) == OPC
    assert stb(dmm) == 0
    assert dmm.read_stb() == 0


def test_cls_clears_event_register_and_error_queue_but_not_enables(dmm: Any) -> None:
    dmm.write("*ESE 1")
    dmm.write("BOGUS")
    dmm.read()
    dmm.write("*OPC")
    dmm.write("*cls")
    assert stb(dmm) == 0
    assert esr(dmm) == 0
    assert dmm.query("SYST:ERR?") == '0,"No error"'
    assert dmm.query("*ESE?") == "1"


def test_opc_waits_for_the_pending_operation(dmm: Any) -> None:
    dmm.write("CAL:SLOW")
    dmm.write("*OPC")
    assert esr(dmm) == 0, "operation still pending: OPC not set"
    dmm.write("*RST")  # aborts the operation and the OPC watch
    assert esr(dmm) == 0
    dmm.write("*OPC")
    assert esr(dmm) == OPC


def test_opc_query_answers_only_when_the_operation_completes(dmm: Any) -> None:
    dmm.write("CAL:SLOW")
    dmm.write("*OPC?")
    dmm.timeout = 1
    with pytest.raises(VisaIOError):
        dmm.read()
    dmm.timeout = 2000
    assert esr(dmm) == 0, "a deferred answer is not a query error"
    dmm.clear()  # device clear: abandons the operation and the *OPC? answer
    dmm.write("INIT")
    assert dmm.query("*OPC?") == "1"


def test_wai_holds_the_parser_until_operations_complete(dmm: Any) -> None:
    dmm.write("INIT")
    dmm.write("*WAI")
    dmm.write("*OPC")
    assert esr(dmm) == OPC


def test_opc_after_a_timed_operation_sets_opc_when_done(dmm: Any) -> None:
    dmm.write("INIT;*OPC")
    assert dmm.query("*OPC?") == "1"
    assert esr(dmm) == OPC


class TestModel:
    """The service request rule: SRQ on each new reason, i.e. a rising bit of STB & SRE."""

    def model(self) -> tuple[StatusModel, list[int]]:
        requests: list[int] = []
        model = StatusModel(
            output_pending=lambda: False,
            current_channel=lambda: "bus",
            answer_opc_query=lambda _channel: None,
            request_service=lambda: requests.append(1),
        )
        model.execute("*ESE", "1")
        model.execute("*SRE", "32")
        return model, requests

    def test_one_request_per_new_reason(self) -> None:
        model, requests = self.model()
        model.execute("*OPC", "")
        model.execute("*OPC", "")
        assert len(requests) == 1, "ESB stayed set: no new reason"
        assert model.execute("*ESR?", "") == "1"
        model.execute("*OPC", "")
        assert len(requests) == 2

    def test_enabling_a_set_bit_requests_service(self) -> None:
        model, requests = self.model()
        model.execute("*SRE", "0")
        model.execute("*OPC", "")
        assert requests == []
        model.execute("*SRE", "32")
        assert requests == [1]
        assert model.requesting_service

    def test_bad_mask_arguments(self) -> None:
        model, _ = self.model()
        model.execute("*ESE", "abc")
        model.execute("*SRE", "300")
        assert model.esr == CME | EXE
        assert model.sre == 32
        assert list(model.errors) == ['-104,"Data type error"', '-222,"Data out of range"']


def test_error_queue_overflow_keeps_the_oldest_and_reads_back_in_order() -> None:
    """SCPI 21.8.2: past 20 entries the last becomes -350; a read frees a slot for new errors."""
    model = StatusModel(
        output_pending=lambda: False,
        current_channel=lambda: "bus",
        answer_opc_query=lambda _channel: None,
        request_service=lambda: None,
    )
    for n in range(25):
        model.set_event(CME, f'-113,"Undefined header {n}"')
    assert len(model.errors) == 20
    assert model.next_error() == '-113,"Undefined header 0"'
    model.set_event(EXE)  # a slot is free again: queued after the -350
    listed = [model.next_error() for _ in range(21)]
    assert listed[18:] == ['-350,"Queue overflow"', '-222,"Data out of range"', '0,"No error"']
    assert model.stb_query() & EAV == 0
