"""Service requests in the simulator: the seed's queue and handler snippets, and VISA event rules."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.sim import LitmusSimLibrary, resource_manager
from pytest_litmus.sim.library import fresh_sim_library
from pytest_litmus.visa import open_resource_manager
from tests.sim.conftest import DMM_SIM, GPIB, NO_EVENTS, NO_SERIAL_POLL

SRQ = constants.EventType.service_request
QUEUE = constants.EventMechanism.queue
HANDLER = constants.EventMechanism.handler


def test_seed_wait_on_event_after_opc() -> None:
    rm = resource_manager(DMM_SIM)
    inst = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
    inst.timeout = 30000
    inst.read_termination = inst.write_termination = "\n"
    try:
        inst.write("*RST")
        inst.write("*CLS")
        inst.write("*ESE 1")
        inst.write("*SRE 32")
        inst.enable_event(constants.EventType.service_request, constants.EventMechanism.queue)
        inst.write("CONF:VOLT:DC 10, 0.0001")
        inst.write("SAMP:COUN 100")
        inst.write("INIT")
        inst.write("*OPC")
        response = inst.wait_on_event(constants.EventType.service_request, timeout=25000)
        assert response.event.event_type == constants.EventType.service_request
        stb = inst.read_stb()
        assert stb & 0x40 and stb & 0x20
        values = [float(v) for v in inst.query("FETC?").strip().split(",")]
        assert len(values) == 3
        inst.disable_event(constants.EventType.service_request, constants.EventMechanism.queue)
    finally:
        inst.close()
        rm.close()


def test_seed_installed_handler() -> None:
    # The seed passes handle_srq(resource, event, user_handle) straight to
    # install_handler; PyVISA wants it wrapped first (Resource.wrap_handler).
    done = threading.Event()
    seen: list[int] = []

    def handle_srq(resource: Any, event: Any, user_handle: Any) -> Any:
        seen.append(resource.read_stb())
        done.set()
        return constants.StatusCode.success

    rm = resource_manager(DMM_SIM)
    inst = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR", read_termination="\n", write_termination="\n")
    try:
        inst.write("*RST")
        inst.write("*CLS")
        inst.write("*ESE 1")
        inst.write("*SRE 32")
        wrapped = inst.wrap_handler(handle_srq)
        user_handle = inst.install_handler(constants.EventType.service_request, wrapped)
        inst.enable_event(constants.EventType.service_request, constants.EventMechanism.handler)
        inst.write("CONF:VOLT:DC")
        inst.write("INIT")
        inst.write("*OPC")
        assert done.wait(timeout=20)
        assert float(inst.query("FETC?").split(",")[0]) == pytest.approx(1.25)
        inst.disable_event(constants.EventType.service_request, constants.EventMechanism.handler)
        inst.uninstall_handler(constants.EventType.service_request, wrapped, user_handle)
    finally:
        inst.close()
        rm.close()
    assert seen and seen[0] & 0x40


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


def test_each_library_starts_fresh() -> None:
    first, second = resource_manager(DMM_SIM), resource_manager(DMM_SIM)
    assert first.visalib is not second.visalib
    a = first.open_resource(GPIB, read_termination="\n", write_termination="\n")
    b = second.open_resource(GPIB, read_termination="\n", write_termination="\n")
    a.write("*ESE 5")
    assert b.query("*ESE?") == "0"
    first.close()
    third = resource_manager(DMM_SIM)
    assert third.open_resource(GPIB, read_termination="\n").query("*ESE?", delay=0) == "0"
    second.close()
    third.close()


def test_the_station_seam_builds_this_library_for_mock_and_sim_specs() -> None:
    assert isinstance(fresh_sim_library(DMM_SIM), LitmusSimLibrary)
    for manager in (open_resource_manager(None, simulation=DMM_SIM), open_resource_manager(f"{DMM_SIM}@sim")):
        assert isinstance(manager.visalib, LitmusSimLibrary)
        manager.close()
