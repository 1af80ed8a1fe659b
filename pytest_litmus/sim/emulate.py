"""One simulated instrument served as raw SCPI over TCP (what ``litmus emulate`` runs).

Each connection is a session of the simulator: newline-terminated commands in,
newline-terminated answers out, as on a LAN instrument's SOCKET port, so
pyvisa-py reaches it as ``TCPIP0::127.0.0.1::<port>::SOCKET``. An ``*OPC?``
holds that connection's parser until its operation completes, like a real
instrument. There is no serial poll on a socket: poll with ``*STB?``.
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from pytest_litmus.errors import CorruptFile, LitmusError, StationConfigError
from pytest_litmus.sim.device import SimDevice
from pytest_litmus.sim.library import LitmusSimLibrary

__all__ = ["LOOPBACK", "Emulator"]

LOOPBACK = "127.0.0.1"
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _Connection(socketserver.StreamRequestHandler):
    server: _Server
    disable_nagle_algorithm = True  # answers are small: Nagle + delayed ACK would add ~40 ms each

    def handle(self) -> None:
        emulator = self.server.emulator
        library, device = emulator.library, emulator.device
        session, _ = library.open(emulator.rm_session, emulator.resource)
        library.set_channel(session, session)  # this connection's answers come back on it
        try:
            for line in self._lines():
                if line.strip():
                    library.write(session, line + device.query_eom)
                    self._send_answers(device, emulator, session)
        except (ConnectionError, OSError):
            pass
        finally:
            library.close(session)

    def _lines(self) -> Iterator[bytes]:
        """Received lines; every segment is ACKed at once (TCP_QUICKACK), so a client's
        Nagle-delayed write is not held up by our delayed ACK (~40 ms a command)."""
        sock, pending = self.request, b""
        while True:
            if _QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = sock.recv(65536)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r")

    def _send_answers(self, device: SimDevice, emulator: Emulator, channel: int) -> None:
        with device.cond:
            device.cond.wait_for(lambda: not device.status.deferred_for(channel) or emulator.closed)
            messages = []
            while message := device.take_message(channel):
                messages.append(message)
        eom = device.response_eom
        for message in messages:
            body = message[: -len(eom)] if eom and message.endswith(eom) else message
            self.wfile.write(body + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    emulator: Emulator


def _load(simulation: str | Path) -> LitmusSimLibrary:
    """The simulator on ``simulation``: an ``OSError`` if the file is missing or unreadable, a
    :class:`CorruptFile` naming it if it is no simulation (pyvisa-sim's own error quotes tracebacks)."""
    from pytest_litmus.sim.library import fresh_sim_library

    Path(simulation).read_bytes()  # missing, a directory, unreadable: an OSError naming the file
    try:
        library = fresh_sim_library(simulation)
    except LitmusError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyvisa-sim raises anything its parser meets
        raise CorruptFile(simulation, f"not a pyvisa-sim simulation file: {_last_line(exc)}") from None
    assert isinstance(library, LitmusSimLibrary)
    return library


def _last_line(exc: BaseException) -> str:
    """The innermost error of a message that quotes tracebacks (pyvisa-sim's ``Could not parse``, nested reprs)."""
    text = str(exc)
    for _ in range(4):  # undo the repr() of each level of quoting
        text = text.replace("\\\\", "\\").replace("\\n", "\n").replace("\\'", "'")
    lines = [line.strip(" '\"") for line in text.splitlines()]
    lines = [line for line in lines if line]
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"[\w.]+(Error|Exception): ", lines[i]):
            where = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("in ") else ""
            return f"{lines[i]} {where}".strip()
    return lines[-1] if lines else type(exc).__name__


class Emulator:
    """Serve ``resource`` of ``simulation`` on ``host:port`` (port 0: a free one)."""

    def __init__(
        self, simulation: str | Path, *, resource: str | None = None, host: str = LOOPBACK, port: int = 0
    ) -> None:
        if not 0 <= port <= 65535:
            raise StationConfigError(None, "--port", "a TCP port 1..65535 (0: a free one)", port)
        library = _load(simulation)
        self.library = library
        resources = list(library.devices.list_resources())
        if resource is not None:
            from pyvisa.rname import InvalidResourceName, to_canonical_name

            try:
                resource = to_canonical_name(resource)
            except InvalidResourceName:
                pass  # refused below, with the resources there are
        if resource is None and len(resources) == 1:
            resource = resources[0]
        if resource is None or resource not in resources:
            raise StationConfigError(simulation, "--resource", "one of " + ", ".join(resources), resource)
        self.resource = resource
        self.device = library.device(resource)
        self.rm_session, _ = library.open_default_resource_manager()
        self.closed = False
        try:
            self._server = _Server((host, port), _Connection)
        except OSError as exc:  # in use, not an address of this machine, not permitted
            raise OSError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def visa_resource(self) -> str:
        """The VISA resource string a client opens: ``TCPIP0::host::port::SOCKET``."""
        host, port = self.address
        return f"TCPIP0::{host}::{port}::SOCKET"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> Emulator:
        """Serve on a daemon thread (for tests and benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="litmus-emulate", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.closed = True
        with self.device.cond:
            self.device.cond.notify_all()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Emulator {self.resource} on {self.visa_resource}>"
