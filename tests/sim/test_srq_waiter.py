"""The SRQ waiter on each mechanism: simulator events, read_stb polling, *STB? polling over TCP."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import pyvisa
from children import end

from pytest_litmus import srq
from pytest_litmus.errors import SrqTimeout, StationConfigError
from pytest_litmus.sim.emulate import Emulator
from tests.sim.conftest import ASRL, DMM_SIM, GPIB, NO_EVENTS, NO_SERIAL_POLL, SOCKET, USB_RAW

BY_MECHANISM = {"event": GPIB, "read_stb": NO_EVENTS, "stb_query": NO_SERIAL_POLL}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event_type: str, fields: dict[str, Any]) -> None:
        self.events.append((event_type, fields))


def open_inst(rm: Any, resource: str) -> Any:
    return rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=5000)


@pytest.mark.parametrize("mechanism", list(BY_MECHANISM))
def test_wait_returns_the_status_byte_once_the_operation_completes(rm: Any, mechanism: str) -> None:
    inst = open_inst(rm, BY_MECHANISM[mechanism])
    emit = Recorder()
    waiter = srq.arm(inst, bus_lock=threading.RLock(), role="dmm", emit=emit)
    assert waiter.mechanism == mechanism
    assert inst.query("*ESE?") == "1" and inst.query("*SRE?") == "32"
    inst.write("INIT;*OPC")
    stb = waiter.wait(timeout=10)
    assert stb & 0x20 and stb & 0x40
    assert waiter.esr == 1, "ESR read (and cleared) after the request"
    ((event_type, fields),) = emit.events
    assert event_type == "SrqWait"
    assert fields["role"] == "dmm" and fields["mechanism"] == mechanism and fields["outcome"] == "srq"
    assert fields["status_byte"] == stb and fields["latency"] >= 0
    assert (fields["polls"] == 0) == (mechanism == "event")
    # the same waiter serves the next operation
    inst.write("INIT;*OPC")
    assert waiter.wait(timeout=10) & 0x40


@pytest.mark.parametrize("mechanism", list(BY_MECHANISM))
def test_timeout_names_role_resource_and_last_status_byte(rm: Any, mechanism: str) -> None:
    inst = open_inst(rm, BY_MECHANISM[mechanism])
    emit = Recorder()
    waiter = srq.arm(inst, role="dmm", emit=emit)
    inst.write("CAL:SLOW;*OPC")
    with pytest.raises(SrqTimeout) as info:
        waiter.wait(timeout=0.05)
    err = info.value
    assert (err.role, err.resource, err.timeout, err.mechanism) == ("dmm", inst.resource_name, 0.05, mechanism)
    assert err.status_byte == 0
    assert isinstance(err, TimeoutError)
    assert emit.events[-1][1]["outcome"] == "timeout"


@pytest.mark.parametrize(
    ("resource", "strings", "mechanism"),
    [
        (ASRL, False, "stb_query"),
        (SOCKET, False, "stb_query"),
        (USB_RAW, False, "stb_query"),
        (USB_RAW, True, "stb_query"),
        (ASRL, True, "read_stb"),
        (SOCKET, True, "read_stb"),
    ],
)
def test_interfaces_without_srq_events_fall_back_to_polling(
    rm: Any, resource: str, strings: bool, mechanism: str
) -> None:
    """No VI_EVENT_SERVICE_REQ on serial, SOCKET or USB RAW: the waiter polls (read_stb under 488.2 strings)."""
    from pyvisa import constants

    inst = open_inst(rm, resource)
    if strings:
        inst.io_protocol = constants.IOProtocol.protocol4882_strs
    emit = Recorder()
    waiter = srq.arm(inst, role="dmm", emit=emit)
    assert waiter.mechanism == mechanism
    inst.write("INIT;*OPC")
    assert waiter.wait(timeout=10) & 0x60 == 0x60
    assert emit.events[-1][1]["polls"] >= 1


def test_mechanism_can_be_forced_and_is_checked(rm: Any) -> None:
    inst = open_inst(rm, GPIB)
    assert srq.arm(inst, mechanism="stb_query").mechanism == "stb_query"
    with pytest.raises(ValueError):
        srq.arm(inst, mechanism="telepathy")  # type: ignore[arg-type]


def test_custom_enables(rm: Any) -> None:
    inst = open_inst(rm, GPIB)
    waiter = srq.arm(inst, ese=0x3D, sre=0x24)
    assert (inst.query("*ESE?"), inst.query("*SRE?")) == ("61", "36")
    waiter.close()


def test_the_bus_lock_is_free_between_polls(rm: Any) -> None:
    """Another thread gets the instrument's lock while a wait is under way, and ends it."""
    inst = open_inst(rm, NO_EVENTS)
    polled = threading.Event()

    class Lock:
        def __init__(self) -> None:
            self.lock = threading.RLock()

        def __enter__(self) -> None:
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()
            polled.set()

    bus_lock = Lock()
    waiter = srq.arm(inst, bus_lock=bus_lock)  # type: ignore[arg-type]
    inst.write("CAL:SLOW;*OPC")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(timeout=30)))
    polled.clear()
    thread.start()
    assert polled.wait(timeout=10)
    assert bus_lock.lock.acquire(timeout=10), "the waiter must not hold the bus lock across the wait"
    try:
        inst.write("*RST;*OPC")  # abort the slow operation; OPC sets at once
    finally:
        bus_lock.lock.release()
    thread.join(timeout=10)
    assert result and result[0] & 0x40


def test_as_completed_yields_each_instrument_as_it_requests_service(rm: Any) -> None:
    fast, polled = open_inst(rm, GPIB), open_inst(rm, NO_EVENTS)
    waiters = [srq.arm(fast, role="a"), srq.arm(polled, role="b")]
    fast.write("INIT;*OPC")
    polled.write("INIT;*OPC")
    done = {waiter.role: stb for waiter, stb in srq.as_completed(waiters, timeout=10)}
    assert set(done) == {"a", "b"}
    assert all(stb & 0x40 for stb in done.values())


def test_as_completed_raises_the_timeout_of_the_one_left(rm: Any) -> None:
    fast, slow = open_inst(rm, GPIB), open_inst(rm, NO_EVENTS)
    waiters = [srq.arm(fast, role="fast"), srq.arm(slow, role="slow")]
    fast.write("*OPC")
    slow.write("CAL:SLOW;*OPC")
    seen = []
    with pytest.raises(SrqTimeout) as info:
        for waiter, _stb in srq.as_completed(waiters, timeout=0.2):
            seen.append(waiter.role)
    assert seen == ["fast"]
    assert info.value.role == "slow"


# -- *STB? polling over a real socket, through pyvisa-py ----------------------------------


@pytest.fixture
def emulated() -> Iterator[Any]:
    with Emulator(DMM_SIM, resource=GPIB) as emulator:
        assert emulator.address[0] == "127.0.0.1"
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(emulator.visa_resource, read_termination="\n", write_termination="\n", timeout=5000)
        yield inst
        inst.close()
        rm.close()


def test_waiter_polls_stb_query_over_pyvisa_py_socket(emulated: Any) -> None:
    emit = Recorder()
    waiter = srq.arm(emulated, role="dmm", emit=emit)
    assert waiter.mechanism == "stb_query", "pyvisa-py SOCKET: no events, no read_stb"
    emulated.write("INIT")
    emulated.write("*OPC")
    stb = waiter.wait(timeout=10)
    assert stb & 0x60 == 0x60
    assert emit.events[-1][1]["polls"] >= 1


def test_emulated_opc_query_answers_when_the_operation_is_done(emulated: Any) -> None:
    assert emulated.query("*IDN?") == "LITMUS,SIM-DMM,0,1.0"
    emulated.write("INIT")
    assert emulated.query("*OPC?") == "1"
    assert emulated.query("*ESR?") == "0"


def test_emulator_needs_a_resource_when_the_file_has_several() -> None:
    with pytest.raises(StationConfigError) as info:
        Emulator(DMM_SIM)
    assert info.value.key == "--resource"
    assert GPIB in info.value.expected


def test_litmus_emulate_subprocess_serves_a_free_port() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_litmus.cli", "emulate", str(DMM_SIM), "--resource", GPIB, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("TCPIP0::127.0.0.1::") and address.endswith("::SOCKET")
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=5000)
        waiter = srq.arm(inst)
        inst.write("INIT;*OPC")
        assert waiter.wait(timeout=10) & 0x40
        assert inst.query("*STB?") == "0", "ESR was read after the request"
        inst.close()
        rm.close()
    finally:
        proc.terminate()
        assert end(proc, kill=False) == 0
