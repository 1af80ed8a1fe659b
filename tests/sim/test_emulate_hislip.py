"""The HiSLIP front door through pyvisa-py (its VISA session and its protocol client) and hostile peers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from children import end
from pyvisa.errors import VisaIOError

from pytest_litmus.sim import hislip
from pytest_litmus.sim.emulate import Emulator
from tests.sim.conftest import DMM_SIM, GPIB

IDN = "LITMUS,SIM-DMM,0,1.0"
QUERIES = {"*IDN?": IDN, "READ?": "1.234567", "FETC?": "1.25,1.26,1.24", "VOLT:RANG?": "10"}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(DMM_SIM, resource=GPIB) as emulator:
        yield emulator


@pytest.fixture
def rm() -> Iterator[Any]:
    import pyvisa

    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def _open(rm: Any, emulator: Emulator, timeout: int = 20000) -> Any:
    assert emulator.hislip_resource is not None
    return rm.open_resource(emulator.hislip_resource, read_termination="\n", write_termination="\n", timeout=timeout)


def _protocol(inst: Any) -> Any:
    """pyvisa-py's HiSLIP protocol client under a resource (``pyvisa_py.protocols.hislip.Instrument``)."""
    return inst.visalib.sessions[inst.session].interface


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "litmus-emulate-conn"]


def test_the_resource_name_is_pyvisas_hislip_syntax(emulator: Emulator) -> None:
    from pyvisa import rname

    assert emulator.hislip_address is not None
    port = emulator.hislip_address[1]
    assert emulator.hislip_resource == f"TCPIP0::127.0.0.1::hislip0,{port}::INSTR"
    assert rname.parse_resource_name(emulator.hislip_resource).lan_device_name == f"hislip0,{port}"


def test_queries_status_byte_clear_and_trigger_through_pyvisa_py(emulator: Emulator, rm: Any) -> None:
    inst = _open(rm, emulator)
    assert inst.query("*IDN?") == IDN
    assert inst.read_stb() == 0
    inst.write("*IDN?")
    assert inst.read_stb() & 0x10  # MAV: a response is on its way
    assert inst.read() == IDN
    assert inst.read_stb() == 0  # delivered (RMT): MAV clear
    assert inst.query("*ESE 32;*SRE 32;BOGUS") == "ERROR"  # the file's answer to a command error; ESB set
    assert inst.read_stb() & 0x20
    inst.write("CAL:SLOW")  # an hour-long operation
    inst.clear()  # AsyncDeviceClear + DeviceClearComplete: operations abandoned
    assert inst.query("*OPC?") == "1"
    _protocol(inst).trigger()
    assert inst.query("*IDN?") == IDN  # the sync channel is in order: the trigger was handled before
    assert emulator.device.triggers == 1
    inst.close()


def test_locks_through_pyvisa_pys_hislip_client(emulator: Emulator, rm: Any) -> None:
    first, second, third = (_open(rm, emulator, timeout=2000) for _ in range(3))
    a, b, c = (_protocol(x) for x in (first, second, third))
    assert a.async_lock_request(1.0, "") == "success"  # exclusive: empty lock string
    assert a.async_lock_info() == 1
    assert b.async_lock_request(0, "") == "failure"  # timeout 0: fails at once
    assert b.async_lock_request(0.05, "k") == "failure"
    assert first.query("*IDN?") == IDN
    assert a.async_lock_release() == "success"
    assert a.async_lock_release() == "error"  # nothing held
    assert b.async_lock_request(1.0, "k") == "success shared"
    assert c.async_lock_request(1.0, "k") == "success shared"  # same key: shared
    assert a.async_lock_request(0, "other") == "failure"
    assert a.async_lock_request(0, "") == "failure"
    assert a.async_lock_info() == 0
    assert second.query("*IDN?") == IDN and third.query("*IDN?") == IDN
    assert b.async_lock_release() == "success shared"
    third.close()  # closing gives its lock back
    assert a.async_lock_request(1.0, "") == "success"
    first.close()
    second.close()


def test_a_client_without_the_lock_waits_for_it(emulator: Emulator, rm: Any) -> None:
    holder, waiter = _open(rm, emulator), _open(rm, emulator, timeout=100)
    assert _protocol(holder).async_lock_request(1.0, "") == "success"
    with pytest.raises(VisaIOError):
        waiter.query("*IDN?")  # held until the lock goes: the client times out
    assert _protocol(holder).async_lock_release() == "success"
    waiter.timeout = 20000
    assert waiter.query("*ESE?") == "0"  # the late *IDN? answer (an older message id) is discarded
    holder.close()
    waiter.close()


def test_pyvisa_py_has_no_visa_lock_on_hislip(emulator: Emulator, rm: Any) -> None:
    """pyvisa-py 0.8.1's HiSLIP session answers viLock with VI_ERROR_NSUP_OPER: locks go through its client."""
    inst = _open(rm, emulator)
    with pytest.raises(VisaIOError) as caught:
        inst.lock_excl(timeout=0)
    assert caught.value.error_code == -1073807257  # VI_ERROR_NSUP_OPER
    inst.close()


_HOLDER = """
import sys, pyvisa
inst = pyvisa.ResourceManager("@py").open_resource(sys.argv[1], timeout=20000)
hislip = inst.visalib.sessions[inst.session].interface
print(hislip.async_lock_request(20.0, ""), flush=True)
sys.stdin.readline()
print(hislip.async_lock_release(), flush=True)
sys.stdin.read()
inst.close()
"""


def test_a_lock_held_by_another_process(emulator: Emulator, rm: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(emulator.hislip_resource)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "success"  # the other process holds the exclusive lock
        inst = _open(rm, emulator)
        mine = _protocol(inst)
        assert mine.async_lock_request(0, "") == "failure"  # timeout 0: at once
        assert mine.async_lock_request(0.2, "") == "failure"  # a timeout: waited, then refused
        assert mine.async_lock_request(0, "shared") == "failure"
        proc.stdin.write("release\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "success"
        assert mine.async_lock_request(0, "") == "success"
    finally:
        proc.stdin.close()
        assert end(proc, kill=False) == 0


def test_four_concurrent_clients_get_no_misrouted_answer(emulator: Emulator, rm: Any) -> None:
    misrouted: list[str] = []

    def client(query: str, expected: str) -> None:
        inst = _open(rm, emulator)
        try:
            misrouted.extend(a for a in (inst.query(query) for _ in range(200)) if a != expected)
        finally:
            inst.close()

    threads = [threading.Thread(target=client, args=item) for item in QUERIES.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert misrouted == []


def test_an_answer_over_the_clients_max_message_size_is_split(emulator: Emulator) -> None:
    from pyvisa_py.protocols.hislip import Instrument

    assert emulator.hislip_address is not None
    client = Instrument("127.0.0.1", port=emulator.hislip_address[1], timeout=20.0)
    try:
        client.async_maximum_message_size(hislip.HEADER.size + 4)  # 4-byte payloads
        client.send(b"*IDN?\n")
        assert client.receive(4096) == (IDN + "\n").encode()
    finally:
        client.close()


# --------------------------------------------------------------------------- hostile peers


def _frame(kind: int, control: int = 0, parameter: int = 0, payload: bytes = b"", length: int | None = None) -> bytes:
    return hislip.HEADER.pack(b"HS", kind, control, parameter, len(payload) if length is None else length) + payload


def _reply(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """The next message (type, control, parameter, payload)."""
    header = b""
    while len(header) < hislip.HEADER.size:
        chunk = sock.recv(hislip.HEADER.size - len(header))
        assert chunk, "closed before a reply"
        header += chunk
    prologue, kind, control, parameter, length = hislip.HEADER.unpack(header)
    assert prologue == b"HS"
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return kind, control, parameter, payload


def _peer(emulator: Emulator) -> socket.socket:
    assert emulator.hislip_address is not None
    return socket.create_connection(emulator.hislip_address, timeout=30)


def _session(emulator: Emulator) -> tuple[socket.socket, socket.socket]:
    sync = _peer(emulator)
    sync.sendall(_frame(hislip.INITIALIZE, 0, 0x0100_4C54, b"hislip0"))
    kind, control, parameter, _ = _reply(sync)
    assert (kind, control, parameter >> 16) == (hislip.INITIALIZE_RESPONSE, 0, 0x0100)
    asynchronous = _peer(emulator)
    asynchronous.sendall(_frame(hislip.ASYNC_INITIALIZE, 0, parameter & 0xFFFF))
    assert _reply(asynchronous)[0] == hislip.ASYNC_INITIALIZE_RESPONSE
    return sync, asynchronous


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (b"GARBAGE-PROLOGUE", hislip.POORLY_FORMED),
        (_frame(hislip.INITIALIZE, length=2**63), hislip.POORLY_FORMED),
        (_frame(hislip.DATA_END, 0, 0, b"*IDN?\n"), hislip.BAD_INITIALIZATION),
        (_frame(hislip.ASYNC_INITIALIZE, 0, 4242), hislip.BAD_INITIALIZATION),
        (_frame(hislip.INITIALIZE, 0, 0x0100_0000, b"hislip7"), hislip.BAD_INITIALIZATION),
    ],
    ids=["garbage-prologue", "payload-2**63", "data-first", "unknown-session", "unknown-sub-address"],
)
def test_a_bad_first_message_is_a_fatal_error_then_close(emulator: Emulator, first: bytes, code: int) -> None:
    with _peer(emulator) as sock:
        sock.sendall(first)
        kind, control, _, text = _reply(sock)
        assert (kind, control) == (hislip.FATAL_ERROR, code), text
        assert sock.recv(1) == b""


def test_hostile_frames_on_an_open_session(emulator: Emulator) -> None:
    sync, asynchronous = _session(emulator)
    with sync, asynchronous:
        sync.sendall(_frame(99, 0, 0, b"vendor stuff"))  # unknown type: Error, payload discarded, session lives
        assert _reply(sync)[:2] == (hislip.ERROR, hislip.UNRECOGNIZED_TYPE)
        asynchronous.sendall(_frame(hislip.DATA, 0, 0, b"x"))  # data on the async channel: misplaced
        assert _reply(asynchronous)[:2] == (hislip.ERROR, hislip.UNRECOGNIZED_TYPE)
        sync.sendall(_frame(hislip.DATA_END, 0, 7, b"*IDN?\n"))
        kind, _, message_id, payload = _reply(sync)
        assert (kind, message_id, payload) == (hislip.DATA_END, 7, (IDN + "\n").encode())
        sync.sendall(_frame(hislip.DATA_END, 0, 9, length=2**63))  # then a payload length of 2**63
        assert _reply(sync)[:2] == (hislip.FATAL_ERROR, hislip.POORLY_FORMED)
        assert sync.recv(1) == b""
        assert asynchronous.recv(1) == b""  # the session is over: both channels closed


def test_truncated_headers_and_silent_peers_pin_no_thread(emulator: Emulator) -> None:
    before = set(_threads())
    truncated = _peer(emulator)
    truncated.sendall(_frame(hislip.INITIALIZE, 0, 0, b"hislip0")[:7])
    silent = _peer(emulator)
    sync, asynchronous = _session(emulator)
    sync.sendall(_frame(hislip.DATA_END, 0, 1, b"CAL:SLOW\n*OPC?\n"))  # an answer an hour away
    truncated.close()
    emulator.close()
    assert not [t for t in set(_threads()) - before if t.is_alive()]
    for sock in (silent, sync, asynchronous):
        with sock:
            assert sock.recv(1) == b""
