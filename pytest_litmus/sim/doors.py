"""What the emulator's front doors (raw SOCKET, HiSLIP) share: a client's session on the instrument.

A :class:`Client` is one VISA session of the simulator with an output channel of
its own, so answers go back on the connection that asked. Its waits (a deferred
``*OPC?``, a command held while another client has the instrument locked, a
lock request) end when the answer comes, when the client leaves (its socket is
watched for the peer's close, see :class:`Watcher`) or when the emulator closes:
no connection thread outlives its client.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.sim.status import EXE

if TYPE_CHECKING:
    from pytest_litmus.sim.device import SimDevice
    from pytest_litmus.sim.library import LitmusSimLibrary

__all__ = ["MAX_MESSAGE", "Abandoned", "Client", "Closed", "Watcher", "dropped"]

log = logging.getLogger("pytest_litmus.sim.emulate")
StatusCode = constants.StatusCode
#: The longest program message a door accepts by default (``--max-message``), in bytes.
MAX_MESSAGE = 1 << 20
TOO_MUCH_DATA = '-223,"Too much data"'
_LOCKED = (StatusCode.error_resource_locked, StatusCode.error_timeout)


class Closed(Exception):
    """The client left, the emulator closed, or a fault dropped the connection: end it quietly."""


class Abandoned(Exception):
    """A device clear abandoned the command the client's parser was held on."""


def dropped(device: SimDevice) -> bool:
    """A ``disconnect`` fault has dropped ``device``'s connections (see :mod:`pytest_litmus.sim.faults`)."""
    return device.faults.disconnected


class Watcher:
    """Marks a client gone the moment its peer closes (epoll ``EPOLLRDHUP``), and wakes its waits.

    One thread per emulator, started with the first client; nothing is done per
    I/O call. Without epoll (not Linux) a wait ends when its answer comes or the
    emulator closes, not when the client leaves.
    """

    def __init__(self) -> None:
        self._poll: Any = select.epoll() if hasattr(select, "epoll") else None
        self._clients: dict[int, Client] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        if self._poll is not None:
            self._poll.register(self._wake_r.fileno(), select.EPOLLIN)

    def add(self, sock: socket.socket, client: Client) -> None:
        if self._poll is None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="litmus-emulate-watch", daemon=True)
                self._thread.start()
            fd = sock.fileno()
            self._clients[fd] = client
            self._poll.register(fd, select.EPOLLRDHUP | select.EPOLLONESHOT)

    def remove(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (before it is closed: its descriptor may be reused)."""
        if self._poll is None:
            return
        with self._lock:
            fd = sock.fileno()
            if self._clients.pop(fd, None) is not None:
                try:
                    self._poll.unregister(fd)
                except OSError:
                    pass

    def _run(self) -> None:
        wake = self._wake_r.fileno()
        while True:
            for fd, _events in self._poll.poll():
                if fd == wake:
                    return
                with self._lock:
                    client = self._clients.get(fd)
                if client is not None:
                    client.leave()

    def close(self) -> None:
        if self._poll is not None:
            self._wake_w.send(b"x")
            if self._thread is not None:
                self._thread.join()
            self._poll.close()
        self._wake_r.close()
        self._wake_w.close()


class Client:
    """One client's VISA session on the emulated instrument, with its own output channel."""

    def __init__(self, library: LitmusSimLibrary, rm_session: Any, resource: str, stopped: Callable[[], bool]) -> None:
        self.library = library
        self.device: SimDevice = library.device(resource)
        self.session, _ = library.open(rm_session, resource)
        library.set_channel(self.session, self.session)  # this client's answers come back to it
        self.gone = False
        #: the parser is held (a deferred ``*OPC?``, a lock held elsewhere): the client waits on the instrument
        self.held = False
        self._abandon = False
        self._stopped = stopped
        self._closed = False

    # -- waits -----------------------------------------------------------------

    def leave(self) -> None:
        """The peer closed: every wait of this client ends."""
        self.gone = True
        with self.device.cond:
            self.device.cond.notify_all()

    def check(self) -> None:
        """:class:`Closed` if the emulator closed or a fault dropped the connection.

        A client that has only half-closed (sent its commands, then FIN) still gets
        the answers to what it sent; only its waits end when it leaves.
        """
        if self._stopped() or dropped(self.device):
            raise Closed

    def wait(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait (under the device condition) until ``ready()``; False at ``timeout``; :class:`Closed` if ended."""
        cond = self.device.cond
        with cond:
            done = cond.wait_for(lambda: ready() or self.gone or self._stopped(), timeout)
        if self.gone:
            raise Closed
        self.check()
        return done

    def _hold(self, ready: Callable[[], bool]) -> None:
        """The parser is held until ``ready()``; :class:`Abandoned` if a device clear comes first."""
        with self.device.cond:
            self.held, self._abandon = True, False
            try:
                self.wait(lambda: ready() or self._abandon)
            finally:
                self.held = False
            if self._abandon and not ready():
                raise Abandoned

    def abandon(self) -> None:
        """Device clear: a held command is dropped (its wait ends)."""
        with self.device.cond:
            if self.held:
                self._abandon = True
                self.device.cond.notify_all()

    # -- I/O -------------------------------------------------------------------

    def execute(self, message: bytes) -> list[bytes]:
        """Run the program message's lines in order; the answers, without their terminator.

        A line that finds the instrument locked by another client waits for the
        lock (an instrument does not parse other clients' commands while locked);
        an ``*OPC?`` waits for its operation, as the instrument holds its parser.
        """
        eom = self.device.query_eom
        for line in message.split(
            b"\n"
        ):  # a CR before the newline is the device's to ignore (a block's last byte may be one)
            if line.strip():
                self.check()
                self._write(line + eom)
        self.check()
        return self._answers()

    def _write(self, data: bytes) -> None:
        while True:
            try:
                self.library.write(self.session, data)
                return
            except VisaIOError as exc:
                if exc.error_code == StatusCode.error_connection_lost:
                    raise Closed from None  # a disconnect fault fired on this command: the connection drops
                if exc.error_code != StatusCode.error_resource_locked:
                    raise
            self._hold(lambda: self.device.locks.allows(self.session))

    def _answers(self) -> list[bytes]:
        device, channel = self.device, self.session
        with device.cond:
            if device.awaiting(channel):  # a deferred *OPC?, or input *WAI holds: the parser is held
                self._hold(lambda: not device.awaiting(channel))
            messages = []
            while message := device.take_message(channel):
                messages.append(message)
        eom = device.response_eom
        return [m[: -len(eom)] if eom and m.endswith(eom) else m for m in messages]

    def too_much_data(self) -> None:
        """A program message longer than the limit was discarded: ``-223,"Too much data"`` in the error queue."""
        with self.device.cond:
            self.device.status.set_event(EXE, TOO_MUCH_DATA)

    def status_byte(self) -> int:
        """The serial poll byte of this client's view (MAV: its own channel), RQS cleared."""
        device = self.device
        with device.cond:
            device.select(self.session)
            return device.serial_poll_byte()

    def clear(self) -> None:
        """Device clear (viClear): the instrument's input and output cleared, operations abandoned."""
        with self.device.cond:
            self.device.device_clear()

    def trigger(self) -> None:
        with self.device.cond:
            self.device.trigger()

    def lock(self, lock_type: constants.Lock, timeout_ms: int, key: str | None) -> str | None:
        """viLock for this client, waiting at most ``timeout_ms``; the key (``""`` if exclusive), None if not granted.

        Tried without waiting and retried whenever the instrument's state changes, so the
        wait ends at once when the client leaves or the emulator closes.
        """
        deadline = time.monotonic() + timeout_ms / 1000.0
        cond = self.device.cond
        with cond:
            while True:
                if self.gone:
                    raise Closed
                self.check()
                try:
                    granted, _ = self.library.lock(self.session, lock_type, 0, key)
                    return str(granted or "")
                except VisaIOError as exc:
                    if exc.error_code not in _LOCKED:
                        raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                cond.wait(remaining)  # any change of the device state (a release notifies): try again

    def unlock(self) -> bool:
        try:
            self.library.unlock(self.session)
        except VisaIOError:
            return False
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.library.close(self.session)
