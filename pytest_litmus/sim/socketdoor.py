"""The raw SOCKET front door: newline-terminated SCPI over TCP, as a LAN instrument's port 5025.

pyvisa-py reaches it as ``TCPIP0::127.0.0.1::<port>::SOCKET``. Each connection
is a client with its own output channel; a program message is a line (``\\r\\n``
or ``\\n``); a line longer than the emulator's ``max_message`` is discarded up
to its newline and answered with ``-223,"Too much data"`` in the error queue,
so memory stays bounded whatever a peer sends. There is no serial poll on a
socket: poll with ``*STB?``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_litmus.sim.doors import Client
    from pytest_litmus.sim.emulate import Emulator

__all__ = ["serve"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_CHUNK = 65536


def serve(emulator: Emulator, sock: socket.socket) -> None:
    """Serve one SOCKET connection until the peer leaves (or the emulator closes)."""
    client = emulator.client(sock)
    try:
        _serve(client, sock, emulator.max_message)
    finally:
        emulator.release(client, sock)


def _serve(client: Client, sock: socket.socket, limit: int) -> None:
    """Execute each received line; every segment is ACKed at once (TCP_QUICKACK), so a client's
    Nagle-delayed write is not held up by our delayed ACK (~40 ms a command)."""
    pending = bytearray()
    discarding = False  # inside a line over the limit: drop bytes up to its newline
    while True:
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(_CHUNK)
        if not chunk:
            return
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if discarding:
                discarding = False
                client.too_much_data()
            elif pending or end - start > limit:
                pending += chunk[start:end]
                line, pending = bytes(pending), bytearray()
                if len(line) > limit:
                    client.too_much_data()
                else:
                    _answer(client, sock, line)
            else:
                _answer(client, sock, chunk[start:end])
            start = end + 1
        if not discarding and start < len(chunk):
            pending += chunk[start:]
            if len(pending) > limit:
                pending, discarding = bytearray(), True


def _answer(client: Client, sock: socket.socket, line: bytes) -> None:
    answers = client.execute(line)
    if answers:
        sock.sendall(b"".join(answer + b"\n" for answer in answers))
