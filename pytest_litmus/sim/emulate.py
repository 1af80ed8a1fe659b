"""One simulated instrument served over TCP (what ``litmus emulate`` runs): raw SOCKET and HiSLIP.

Two front doors on one instrument state: the raw SOCKET door
(:mod:`pytest_litmus.sim.socketdoor`, ``TCPIP0::127.0.0.1::<port>::SOCKET``) and
the HiSLIP door (:mod:`pytest_litmus.sim.hislip`,
``TCPIP0::127.0.0.1::hislip0,<port>::INSTR``). Each connection (each HiSLIP
session) is a client of the simulator with its own output channel and its own
VISA locks. A connection's failure is logged once and that connection closed;
the emulator keeps serving. :meth:`Emulator.close` ends every connection thread.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from pytest_litmus.errors import CorruptFile, LitmusError, StationConfigError
from pytest_litmus.sim import hislip, socketdoor
from pytest_litmus.sim.doors import MAX_MESSAGE, Client, Closed, Watcher
from pytest_litmus.sim.library import LitmusSimLibrary

__all__ = ["LOOPBACK", "MAX_MESSAGE", "Emulator"]

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
Door = Callable[["Emulator", socket.socket], None]


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
    """Serve ``resource`` of ``simulation`` on ``host``: raw SOCKET on ``port``, HiSLIP on ``hislip_port``.

    Port 0 is a free one; ``hislip_port=None`` serves no HiSLIP. ``max_message``
    bounds a program message (bytes); a longer one is discarded and answered
    ``-223,"Too much data"``.
    """

    def __init__(
        self,
        simulation: str | Path,
        *,
        resource: str | None = None,
        host: str = LOOPBACK,
        port: int = 0,
        hislip_port: int | None = 0,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        for option, value in (("--port", port), ("--hislip-port", hislip_port)):
            if value is not None and not 0 <= value <= 65535:
                raise StationConfigError(None, option, "a TCP port 1..65535 (0: a free one)", value)
        if max_message < 1:
            raise StationConfigError(None, "--max-message", "a positive number of bytes", max_message)
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
        self.simulation = Path(simulation)
        self.device = library.device(resource)
        self.rm_session, _ = library.open_default_resource_manager()
        self.max_message = max_message
        self.closed = False
        self._doors: dict[socket.socket, Door] = {}
        try:
            self._doors[_listen(host, port)] = socketdoor.serve
            if hislip_port is not None:
                self._doors[_listen(host, hislip_port)] = hislip.serve
        except OSError:
            self._close_listeners()
            raise
        self.watcher = Watcher()  # after the ports: a port in use leaves no descriptor behind
        self.hislip = hislip.Sessions()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()
        self._served = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the SOCKET door."""
        host, port = next(iter(self._doors)).getsockname()[:2]
        return str(host), int(port)

    @property
    def hislip_address(self) -> tuple[str, int] | None:
        for sock, door in self._doors.items():
            if door is hislip.serve:
                host, port = sock.getsockname()[:2]
                return str(host), int(port)
        return None

    @property
    def visa_resource(self) -> str:
        """The VISA resource of the SOCKET door: ``TCPIP0::host::port::SOCKET``."""
        host, port = self.address
        return f"TCPIP0::{host}::{port}::SOCKET"

    @property
    def hislip_resource(self) -> str | None:
        """The VISA resource of the HiSLIP door: ``TCPIP0::host::hislip0,port::INSTR`` (None: not served)."""
        address = self.hislip_address
        return None if address is None else f"TCPIP0::{address[0]}::{hislip.SUB_ADDRESS},{address[1]}::INSTR"

    # -- serving -----------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`close` (or an exception, e.g. KeyboardInterrupt, in this thread)."""
        self._serving.set()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._wake_r, selectors.EVENT_READ)
                for listener, door in self._doors.items():
                    selector.register(listener, selectors.EVENT_READ, door)
                while not self.closed:
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_r:
                            return
                        assert isinstance(key.fileobj, socket.socket)
                        self._accept(key.fileobj, key.data)
        finally:
            self._served.set()

    def _accept(self, listener: socket.socket, door: Door) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:  # the peer gave up before we got to it, or out of descriptors: keep serving
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small answers: no Nagle + delayed ACK
        thread = threading.Thread(target=self._serve, args=(sock, door), name="litmus-emulate-conn", daemon=True)
        with self._lock:
            if self.closed:
                sock.close()
                return
            self._connections[thread] = sock
        thread.start()

    def _serve(self, sock: socket.socket, door: Door) -> None:
        try:
            door(self, sock)
        except (Closed, OSError):
            pass  # the peer left (or reset), the emulator closed, or a fault dropped the connection
        except Exception:  # a bug or a device that raises: this connection ends, the emulator serves on
            log.exception("litmus emulate: a connection to %s failed and was closed", self.resource)
        finally:
            with self._lock:
                self._connections.pop(threading.current_thread(), None)
            sock.close()

    def client(self, sock: socket.socket) -> Client:
        """A new client of the instrument for the connection ``sock`` (watched: its waits end when it leaves)."""
        client = Client(self.library, self.rm_session, self.resource, lambda: self.closed)
        self.watcher.add(sock, client)
        return client

    def release(self, client: Client, sock: socket.socket) -> None:
        """The client's connection ends: its session closes (its locks and unread answers go)."""
        self.watcher.remove(sock)
        client.close()

    def start(self) -> Emulator:
        """Serve on a daemon thread (for tests and benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="litmus-emulate", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, end every connection (its thread joined), release the ports."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            connections = dict(self._connections)
        self._wake_w.send(b"x")
        if self._serving.is_set() and self._thread is not threading.current_thread():
            self._served.wait()
        if self._thread is not None:
            self._thread.join()
        self._close_listeners()
        with self.device.cond:
            self.device.cond.notify_all()  # waits on the instrument end (they see `closed`)
        for sock in connections.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a recv in progress returns
            except OSError:
                pass
        for thread in connections:
            thread.join()
        self.watcher.close()
        self._wake_r.close()
        self._wake_w.close()

    def _close_listeners(self) -> None:
        for listener in self._doors:
            listener.close()

    @property
    def connections(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._connections)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Emulator {self.resource} on {self.visa_resource}>"


def _listen(host: str, port: int) -> socket.socket:
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:  # in use, not an address of this machine, not permitted
        raise OSError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    listener.listen(64)
    return listener
