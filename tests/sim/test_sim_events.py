"""Service requests in the simulator: VISA event rules, and SRQ / read_stb per interface class as NI-VISA has them.

The seed's queue and handler snippets are in ``test_seeds.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.sim import LitmusSimLibrary
from pytest_litmus.sim.library import fresh_sim_library
from pytest_litmus.visa import open_resource_manager
from tests.sim.conftest import ASRL, DMM_SIM, GPIB, LAN, NO_EVENTS, NO_SERIAL_POLL, SOCKET, USB, USB_RAW

SRQ = constants.EventType.service_request
QUEUE = constants.EventMechanism.queue
HANDLER = constants.EventMechanism.handler


def test_wait_on_event_capture_timeout(dmm: Any) -> None:
    dmm.enable_event(SRQ, QUEUE)
    response = dmm.wait_on_event(SRQ, 1, capture_timeout=True)
    assert response.timed_out
    with pytest.raises(VisaIOError) as info:
        dmm.wait_on_event(SRQ, 0)
    assert info.value.error_code == constants.StatusCode.error_timeout


def test_events_go_only_to_sessions_that_enabled_them(rm: Any, dmm: Any) -> None:
    other = rm.open_resource(GPIB, read_termination="\n", write_termination="\n")
    dmm.enable_event(SRQ, QUEUE)
    dmm.write("*ESE 1;*SRE 32;*OPC")
    assert dmm.wait_on_event(SRQ, 0).event.event_type == SRQ
    with pytest.raises(VisaIOError) as info:
        other.wait_on_event(SRQ, 0)
    assert info.value.error_code == constants.StatusCode.error_not_enabled


def test_discard_and_disable(dmm: Any) -> None:
    dmm.enable_event(SRQ, QUEUE)
    dmm.write("*ESE 1;*SRE 32;*OPC")
    dmm.discard_events(SRQ, QUEUE)
    assert dmm.wait_on_event(SRQ, 0, capture_timeout=True).timed_out
    dmm.disable_event(SRQ, QUEUE)
    with pytest.raises(VisaIOError) as info:
        dmm.wait_on_event(SRQ, 0)
    assert info.value.error_code == constants.StatusCode.error_not_enabled


def test_handler_mechanism_needs_an_installed_handler(dmm: Any) -> None:
    with pytest.raises(VisaIOError) as info:
        dmm.enable_event(SRQ, HANDLER)
    assert info.value.error_code == constants.StatusCode.error_handler_not_installed


def test_switched_off_capabilities_fail_as_unsupported(rm: Any) -> None:
    no_events = rm.open_resource(NO_EVENTS)
    no_poll = rm.open_resource(NO_SERIAL_POLL)
    for call in (lambda: no_events.enable_event(SRQ, QUEUE), no_poll.read_stb):
        with pytest.raises(VisaIOError) as info:
            call()
        assert info.value.error_code == constants.StatusCode.error_nonsupported_operation
    assert no_events.read_stb() == 0


def test_assert_trigger_is_counted(rm: Any, dmm: Any) -> None:
    dmm.assert_trigger()
    assert rm.visalib.device(GPIB).triggers == 1


def test_the_station_seam_builds_this_library_for_mock_and_sim_specs() -> None:
    assert isinstance(fresh_sim_library(DMM_SIM), LitmusSimLibrary)
    for manager in (open_resource_manager(None, simulation=DMM_SIM), open_resource_manager(f"{DMM_SIM}@sim")):
        assert isinstance(manager.visalib, LitmusSimLibrary)
        manager.close()


# -- per interface class ----------------------------------------------------------

Status = constants.StatusCode
WITH_EVENTS = [GPIB, LAN, USB]
WITHOUT_EVENTS = [ASRL, SOCKET, USB_RAW]


def error_code(call: Any, *args: Any) -> int:
    with pytest.raises(VisaIOError) as info:
        call(*args)
    return int(info.value.error_code)


def test_service_request_events_exactly_on_gpib_tcpip_instr_and_usb_instr(rm: Any) -> None:
    for resource in WITH_EVENTS + WITHOUT_EVENTS:
        inst = rm.open_resource(resource, read_termination="\n", write_termination="\n")
        inst.write("*CLS")
        if resource not in WITH_EVENTS:
            assert error_code(inst.enable_event, SRQ, QUEUE) == Status.error_invalid_event, resource
            continue
        inst.enable_event(SRQ, QUEUE)
        inst.write("*ESE 1;*SRE 32;*OPC")
        assert inst.wait_on_event(SRQ, 1000).event.event_type == SRQ, resource
        assert inst.read_stb() & 0x60 == 0x60, "serial poll: RQS"
        assert inst.read_stb() & 0x40 == 0, "RQS cleared by the serial poll"
        inst.write("*SRE 0")


@pytest.mark.parametrize("resource", WITHOUT_EVENTS)
def test_asrl_socket_and_usb_raw_have_no_service_request_event(rm: Any, resource: str) -> None:
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n")
    handler = inst.wrap_handler(lambda *args: None)
    calls = [
        (inst.enable_event, SRQ, QUEUE),
        (inst.enable_event, SRQ, HANDLER),
        (inst.install_handler, SRQ, handler),
        (inst.wait_on_event, SRQ, 0),
        (inst.discard_events, SRQ, QUEUE),
        (inst.disable_event, SRQ, QUEUE),
    ]
    for call, *args in calls:
        assert error_code(call, *args) == Status.error_invalid_event, call.__name__
    assert inst.query("*IDN?").startswith("LITMUS"), "the session is still usable"


@pytest.mark.parametrize("resource", WITHOUT_EVENTS)
def test_read_stb_without_488_strings_is_not_supported(rm: Any, resource: str) -> None:
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n")
    assert error_code(inst.read_stb) == Status.error_nonsupported_operation


@pytest.mark.parametrize("resource", [ASRL, SOCKET])
def test_read_stb_under_488_strings_answers_like_stb_query(rm: Any, resource: str) -> None:
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n")
    inst.io_protocol = constants.IOProtocol.protocol4882_strs
    inst.write("*ESE 1;*SRE 32;*OPC")
    assert inst.read_stb() == 0x60, "MSS, as *STB? answers"
    assert inst.read_stb() == 0x60, "*STB? clears nothing"
    assert inst.query("*STB?") == str(0x60)


def test_usb_raw_never_serial_polls(rm: Any) -> None:
    inst = rm.open_resource(USB_RAW, read_termination="\n", write_termination="\n")
    inst.io_protocol = constants.IOProtocol.protocol4882_strs
    assert error_code(inst.read_stb) == Status.error_nonsupported_operation


def test_the_file_flags_only_narrow_what_the_interface_has(tmp_path: Any) -> None:
    from pytest_litmus.sim import resource_manager

    text = DMM_SIM.read_text(encoding="utf-8").replace(
        "  ASRL1::INSTR:\n    device: dmm\n",
        "  ASRL1::INSTR:\n    device: dmm\n    litmus: {service_requests: true, serial_poll: true}\n",
    )
    assert "serial_poll: true}" in text
    path = tmp_path / "sim.yaml"
    path.write_text(text, encoding="utf-8")
    rm = resource_manager(path, fresh=True)
    inst = rm.open_resource(ASRL, read_termination="\n", write_termination="\n")
    assert error_code(inst.enable_event, SRQ, QUEUE) == Status.error_invalid_event
    assert error_code(inst.read_stb) == Status.error_nonsupported_operation
    rm.close()
