"""The raw SOCKET front door under hostile and departing clients: bounded memory, no thread leaks."""

from __future__ import annotations

import logging
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_litmus.sim import doors
from pytest_litmus.sim.emulate import Emulator
from tests.sim.conftest import DMM_SIM, GPIB

IDN = b"LITMUS,SIM-DMM,0,1.0\n"
TOO_MUCH = b'-223,"Too much data"\n'


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(DMM_SIM, resource=GPIB) as emulator:
        yield emulator


def _connect(emulator: Emulator) -> tuple[socket.socket, Any]:
    sock = socket.create_connection(emulator.address, timeout=30)
    return sock, sock.makefile("rb")


def _connection_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "litmus-emulate-conn"]


def _wait_deferred(emulator: Emulator) -> None:
    """Until some client's *OPC? is deferred (writes notify the device condition)."""
    device = emulator.device
    with device.cond:
        assert device.cond.wait_for(
            lambda: any(device.status.deferred_for(s) for s in list(emulator.library.sessions)), 30
        )


def test_16_mb_without_a_newline_keeps_memory_bounded_and_queues_too_much_data(emulator: Emulator) -> None:
    sock, reader = _connect(emulator)
    block = b"X" * 65536
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(256):  # 16 MiB, no newline
            sock.sendall(block)
        sock.sendall(b"\n*IDN?\n")
        assert reader.readline() == IDN  # the server has read it all
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 4 << 20, f"grew by {(peak - base) >> 20} MiB"
    sock.sendall(b"SYST:ERR?\nSYST:ERR?\n")
    assert reader.readline() == TOO_MUCH
    assert reader.readline() == b'0,"No error"\n'  # one error for the one message
    sock.close()


@pytest.mark.parametrize("chunks", [[b"*IDN?; *IDN?\n"], [b"*IDN?", b"; *IDN?\n"]], ids=["one-segment", "split"])
def test_a_line_over_max_message_is_refused_one_at_the_limit_is_served(chunks: list[bytes]) -> None:
    with Emulator(DMM_SIM, resource=GPIB, max_message=11) as emulator:
        sock, reader = _connect(emulator)
        with sock:
            for chunk in chunks:  # 12 bytes: one over
                sock.sendall(chunk)
            sock.sendall(b"*IDN?;*ESE?\nSYST:ERR?\n")  # 11 bytes: at the limit
            assert reader.readline() == IDN
            assert reader.readline() == b"0\n"
            assert reader.readline() == TOO_MUCH


def test_a_client_that_leaves_with_a_deferred_opc_query_ends_its_thread(emulator: Emulator) -> None:
    before = set(_connection_threads())
    sock = socket.create_connection(emulator.address, timeout=30)
    sock.sendall(b"CAL:SLOW\n*OPC?\n")  # CAL:SLOW takes an hour: the *OPC? answer is an hour away
    _wait_deferred(emulator)
    (thread,) = set(_connection_threads()) - before
    sock.close()
    thread.join(30)
    assert not thread.is_alive(), "the connection thread still waits for an answer nobody will read"
    with socket.create_connection(emulator.address) as other:  # and the emulator serves on
        other.sendall(b"*IDN?\n")
        assert other.makefile("rb").readline() == IDN


def test_close_ends_every_connection_thread_and_socket() -> None:
    emulator = Emulator(DMM_SIM, resource=GPIB).start()
    idle, idle_reader = _connect(emulator)
    waiting, _ = _connect(emulator)
    partial, _ = _connect(emulator)
    idle.sendall(b"*IDN?\n")
    assert idle_reader.readline() == IDN  # its thread is back in recv
    waiting.sendall(b"CAL:SLOW\n*OPC?\n")
    _wait_deferred(emulator)
    partial.sendall(b"*ID")  # half a line
    threads = _connection_threads()
    assert len(threads) >= 3
    emulator.close()
    for thread in threads:
        assert not thread.is_alive()  # close() joined them
    for sock in (idle, waiting, partial):
        with sock:
            assert sock.recv(1) == b""  # closed by the emulator
    with pytest.raises(OSError):
        socket.create_connection(emulator.address, timeout=5)


def test_a_failing_command_is_logged_once_and_closes_only_its_connection(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    device = emulator.device
    write = device.write

    def buggy(data: bytes) -> None:
        if data.startswith(b"BOOM"):
            raise UnicodeDecodeError("utf-8", data, 0, 1, "a device that raises")
        write(data)

    monkeypatch.setattr(device, "write", buggy)
    bystander, bystander_reader = _connect(emulator)
    sock, reader = _connect(emulator)
    with caplog.at_level(logging.ERROR, logger="pytest_litmus.sim.emulate"):
        sock.sendall(b"BOOM\n*IDN?\n")
        assert reader.readline() == b""  # closed, no answer to what followed
        bystander.sendall(b"*IDN?\n")
        assert bystander_reader.readline() == IDN
    failures = [r for r in caplog.records if "failed and was closed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    again, again_reader = _connect(emulator)
    again.sendall(b"*IDN?\n")
    assert again_reader.readline() == IDN
    for s in (bystander, sock, again):
        s.close()


def test_non_utf8_input_is_answered_and_the_connection_lives(emulator: Emulator) -> None:
    sock, reader = _connect(emulator)
    with sock:
        sock.sendall(b"\xff\xfe\x80 \xc3(\n*IDN?\n")
        assert reader.readline() == IDN  # the bad line got no answer; the connection serves on
        sock.sendall(b"*ESR?\nSYST:ERR?\n")
        assert reader.readline() == b"32\n"  # command error
        assert reader.readline().startswith(b"-101,")  # Invalid character


def test_a_disconnect_fault_closes_the_connection(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sock, reader = _connect(emulator)
    with sock:
        sock.sendall(b"*IDN?\n")
        assert reader.readline() == IDN
        monkeypatch.setattr(doors, "dropped", lambda device: True)
        sock.sendall(b"*IDN?\n")
        assert reader.readline() == b""


def test_the_disconnect_check_reads_the_device_fault_flag(emulator: Emulator) -> None:
    assert not doors.dropped(emulator.device)
    emulator.device.inject("disconnect")
    assert doors.dropped(emulator.device)
    emulator.device.clear_faults()
    assert not doors.dropped(emulator.device)


def test_four_pipelined_pyvisa_py_clients_get_no_misrouted_answer(emulator: Emulator) -> None:
    import pyvisa

    queries = {"*IDN?": "LITMUS,SIM-DMM,0,1.0", "READ?": "1.234567", "FETC?": "1.25,1.26,1.24", "VOLT:RANG?": "10"}
    rm = pyvisa.ResourceManager("@py")
    misrouted: list[str] = []

    def client(query: str, expected: str) -> None:
        inst = rm.open_resource(emulator.visa_resource, read_termination="\n", write_termination="\n", timeout=20000)
        try:
            for _ in range(10):
                for _ in range(20):
                    inst.write(query)  # twenty queries in flight before the first read
                misrouted.extend(a for a in (inst.read() for _ in range(20)) if a != expected)
        finally:
            inst.close()

    threads = [threading.Thread(target=client, args=item) for item in queries.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rm.close()
    assert misrouted == []


def test_a_query_after_wai_is_answered_on_its_connection_when_the_operation_completes(emulator: Emulator) -> None:
    sock, reader = _connect(emulator)
    with sock:
        sock.sendall(b"INIT\n*WAI\n*IDN?\n")  # *WAI holds the parser: the answer comes after INIT completes
        assert reader.readline() == IDN  # was never sent: the door did not wait for input *WAI held
        sock.sendall(b"*ESE?\n")
        assert reader.readline() == b"0\n"


def test_a_disconnect_fault_on_a_command_closes_the_connection_without_a_traceback(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.device.inject("disconnect", on="READ?")
    sock, reader = _connect(emulator)
    with sock, caplog.at_level(logging.ERROR):
        sock.sendall(b"*IDN?\n")
        assert reader.readline() == IDN
        sock.sendall(b"READ?\n")
        assert reader.readline() == b""  # dropped, as the fault says
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a fault, not a failure of ours


def test_a_block_whose_last_byte_is_a_carriage_return_keeps_it(emulator: Emulator) -> None:
    sock, reader = _connect(emulator)
    with sock:
        sock.sendall(b"TRAC:DATA #13ab\r\n")  # three bytes: a, b, CR
        sock.sendall(b"TRAC:DATA?\n")
        assert reader.readline() == b"#13ab\r\n"
