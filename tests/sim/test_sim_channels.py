"""Output channels: an answer goes back to whoever asked, on a bus and over the emulator."""

from __future__ import annotations

import socket
from typing import Any

from pytest_litmus.sim.emulate import Emulator
from tests.sim.conftest import DMM_SIM, GPIB


def _ask(sock: socket.socket, reader: Any, command: bytes) -> bytes:
    sock.sendall(command + b"\n")
    line: bytes = reader.readline()
    return line


def test_a_deferred_opc_answer_goes_to_the_session_that_asked(rm: Any) -> None:
    library = rm.visalib
    asking = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    other = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    library.set_channel(asking.session, "asking")
    library.set_channel(other.session, "other")
    asking.write("INIT")
    asking.write("*OPC?")  # deferred until INIT completes
    other.write("*IDN?")  # answered at once, on the other channel
    assert asking.read() == "1"  # on one shared queue this would be the other's *IDN? answer
    assert other.read() == "LITMUS,SIM-DMM,0,1.0"


def test_sessions_of_one_library_share_the_bus_as_on_gpib(rm: Any) -> None:
    first = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    second = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    first.write("*IDN?")
    assert second.read() == "LITMUS,SIM-DMM,0,1.0"  # one instrument, one output queue


def test_a_client_that_leaves_with_opc_pending_does_not_swallow_the_next_answer() -> None:
    with Emulator(DMM_SIM, resource=GPIB) as emulator:
        host, port = emulator.address
        with socket.create_connection((host, port)) as leaving:
            leaving.sendall(b"INIT\n*OPC?\n")
        with socket.create_connection((host, port)) as staying:
            reader = staying.makefile("rb")
            assert _ask(staying, reader, b"*IDN?") == b"LITMUS,SIM-DMM,0,1.0\n"
            assert _ask(staying, reader, b"*OPC?") == b"1\n"  # waits for INIT, then answers here
            assert _ask(staying, reader, b"*ESE?") == b"0\n"  # nothing left over, nothing shifted


def test_pipelined_clients_each_get_their_own_answers() -> None:
    with Emulator(DMM_SIM, resource=GPIB) as emulator:
        clients = [socket.create_connection(emulator.address) for _ in range(4)]
        try:
            for n, client in enumerate(clients):  # each sets its own mask, then asks, all before reading
                client.sendall(f"*ESE {n + 1}\n*ESE?\nINIT\n*OPC?\n*IDN?\n".encode())
            for n, client in enumerate(clients):
                reader = client.makefile("rb")
                answers = [reader.readline() for _ in range(3)]
                assert answers[1:] == [b"1\n", b"LITMUS,SIM-DMM,0,1.0\n"], n
                assert answers[0] in {b"%d\n" % m for m in range(1, 5)}  # one device: the last *ESE wins
        finally:
            for client in clients:
                client.close()
