"""The HiSLIP front door (IVI-6.1), as pyvisa-py's client uses it.

A client opens a *synchronous* connection (``Initialize``: sub-address, protocol
version; the answer carries the session id, synchronized mode and protocol 1.0)
and then an *asynchronous* one on the same port (``AsyncInitialize`` with that
session id). Both are one :class:`~pytest_litmus.sim.doors.Client` of the
simulator, so its VISA locks, output channel and status byte are that client's.

Synchronous channel: ``Data``/``DataEnd`` (a program message, answered by one
``DataEnd`` per response message carrying the id of the message that asked),
``Trigger`` (GET), ``DeviceClearComplete`` (answered ``DeviceClearAcknowledge``).
Asynchronous channel: ``AsyncMaxMsgSize``, ``AsyncLock`` (request: an empty lock
string is exclusive, any other a shared lock with that key; the message
parameter is the timeout in ms; release), ``AsyncLockInfo``,
``AsyncDeviceClear`` (the simulator's viClear), ``AsyncStatusQuery`` (the serial
poll byte; MAV also while a sent response is not yet delivered, as IVI-6.1 has it:
the client's RMT-delivered flag clears it), ``AsyncRemoteLocalControl`` (acknowledged; there is no front panel).

A bad prologue, an oversize payload (over ``max_message``) or a broken
initialization sequence is answered ``FatalError`` and the connection closed;
an unknown or misplaced message type is answered ``Error`` and its payload
discarded. Not served: overlapped mode, ``Interrupted``, TLS and SASL (1.1/2.0),
``GetDescriptors``, ``AsyncServiceRequest`` (pyvisa-py delivers no events).
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvisa import constants

from pytest_litmus.sim.doors import Abandoned, Closed
from pytest_litmus.sim.status import MAV

if TYPE_CHECKING:
    from pytest_litmus.sim.doors import Client
    from pytest_litmus.sim.emulate import Emulator

__all__ = ["HEADER", "SUB_ADDRESS", "Sessions", "serve"]

HEADER = struct.Struct("!2sBBIQ")  # prologue "HS", type, control code, message parameter, payload length
SUB_ADDRESS = "hislip0"
PROTOCOL = 0x0100  # 1.0: what we serve (pyvisa-py asks 1.0)
VENDOR = int.from_bytes(b"LT", "big")

# Message types (IVI-6.1 table 4).
INITIALIZE, INITIALIZE_RESPONSE, FATAL_ERROR, ERROR = 0, 1, 2, 3
ASYNC_LOCK, ASYNC_LOCK_RESPONSE, DATA, DATA_END = 4, 5, 6, 7
DEVICE_CLEAR_COMPLETE, DEVICE_CLEAR_ACKNOWLEDGE = 8, 9
ASYNC_REMOTE_LOCAL_CONTROL, ASYNC_REMOTE_LOCAL_RESPONSE, TRIGGER = 10, 11, 12
ASYNC_MAX_MSG_SIZE, ASYNC_MAX_MSG_SIZE_RESPONSE, ASYNC_INITIALIZE, ASYNC_INITIALIZE_RESPONSE = 15, 16, 17, 18
ASYNC_DEVICE_CLEAR, ASYNC_STATUS_QUERY, ASYNC_STATUS_RESPONSE, ASYNC_DEVICE_CLEAR_ACKNOWLEDGE = 19, 21, 22, 23
ASYNC_LOCK_INFO, ASYNC_LOCK_INFO_RESPONSE = 24, 25

# FatalError codes; Error codes.
POORLY_FORMED, NO_BOTH_CHANNELS, BAD_INITIALIZATION = 1, 2, 3
UNRECOGNIZED_TYPE, TOO_LARGE = 1, 4
# AsyncLockResponse control codes.
LOCK_FAILURE, LOCK_SUCCESS, LOCK_SUCCESS_SHARED, LOCK_ERROR = 0, 1, 2, 3
_SUB_ADDRESS_MAX = 256
FIRST_MESSAGE_ID = 0xFFFF_FF00  # a client's first message id (IVI-6.1), again after a device clear
_CATCH_UP_S = 1.0


@dataclass
class _Session:
    client: Client
    sync: socket.socket
    asynchronous: socket.socket | None = None
    #: the client's max message size (AsyncMaxMsgSize): our answers are split to fit
    client_max: int = 1 << 20
    locks: list[constants.Lock] = field(default_factory=list)
    #: a response was sent the client has not said it delivered (RMT-delivered): MAV in the status query
    undelivered: bool = False
    #: the id of the last message the synchronous channel has handled
    done_id: int | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """The HiSLIP sessions of one emulator: id -> session (16-bit ids, as the protocol has)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}
        self._ids = itertools.cycle(range(1, 0x10000))

    def add(self, session: _Session) -> int:
        with self._lock:
            if len(self._sessions) >= 0xFFFF:
                raise Closed  # every id in use
            while (sid := next(self._ids)) in self._sessions:
                pass
            self._sessions[sid] = session
            return sid

    def attach(self, sid: int, sock: socket.socket) -> _Session | None:
        """Give session ``sid`` its asynchronous channel; None if there is no such session or it has one."""
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.asynchronous is not None:
                return None
            session.asynchronous = sock
            return session

    def remove(self, sid: int) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def lock_info(self) -> tuple[int, int]:
        """AsyncLockInfo: (1 if a client holds an exclusive lock, the number of clients holding locks)."""
        with self._lock:
            holders = [s for s in self._sessions.values() if s.locks]
            exclusive = any(constants.Lock.exclusive in s.locks for s in holders)
            return int(exclusive), len(holders)


class _Fatal(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def send(sock: socket.socket, kind: int, control: int = 0, parameter: int = 0, payload: bytes = b"") -> None:
    sock.sendall(HEADER.pack(b"HS", kind, control, parameter, len(payload)) + payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes, or :class:`Closed` if the peer leaves first."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise Closed
        got += n
    return bytes(buffer)


def _discard(sock: socket.socket, size: int) -> None:
    while size > 0:
        size -= len(_recv_exact(sock, min(size, 65536)))


def _header(sock: socket.socket, limit: int) -> tuple[int, int, int, int]:
    """The next message header: (type, control code, parameter, payload length)."""
    prologue, kind, control, parameter, length = HEADER.unpack(_recv_exact(sock, HEADER.size))
    if prologue != b"HS":
        raise _Fatal(POORLY_FORMED, f"bad prologue {prologue!r} (expected b'HS')")
    if length > max(limit, _SUB_ADDRESS_MAX):
        raise _Fatal(POORLY_FORMED, f"payload of {length} bytes exceeds the maximum message size {limit}")
    return kind, control, parameter, length


def serve(emulator: Emulator, sock: socket.socket) -> None:
    """Serve one HiSLIP connection: its first message says whether it is a synchronous or asynchronous channel."""
    try:
        kind, _control, parameter, length = _header(sock, emulator.max_message)
        if kind == INITIALIZE:
            sub_address = _recv_exact(sock, length).decode("ascii", "replace")
            if sub_address != SUB_ADDRESS:
                raise _Fatal(BAD_INITIALIZATION, f"unknown sub-address {sub_address!r} (served: {SUB_ADDRESS})")
            _serve_sync(emulator, sock)
        elif kind == ASYNC_INITIALIZE:
            _discard(sock, length)
            session = emulator.hislip.attach(parameter & 0xFFFF, sock)
            if session is None:
                raise _Fatal(BAD_INITIALIZATION, f"AsyncInitialize for no session waiting for it ({parameter})")
            _serve_async(emulator, session, sock)
        else:
            raise _Fatal(BAD_INITIALIZATION, f"message type {kind} before Initialize / AsyncInitialize")
    except _Fatal as fatal:
        _fatal_error(sock, fatal)


def _fatal_error(sock: socket.socket, fatal: _Fatal) -> None:
    send(sock, FATAL_ERROR, fatal.code, 0, str(fatal).encode())
    _part(sock)


def _part(sock: socket.socket) -> None:
    """Close our side after a FatalError so that it is read, not reset: what the peer already sent is
    dropped (unread input would make close() send RST), at most a few reads' worth."""
    sock.shutdown(socket.SHUT_WR)
    sock.setblocking(False)
    for _ in range(16):
        try:
            if not sock.recv(65536):
                return
        except OSError:  # nothing more buffered (or gone)
            return


def _serve_sync(emulator: Emulator, sock: socket.socket) -> None:
    client = emulator.client(sock)
    session = _Session(client, sock)
    sid = emulator.hislip.add(session)
    try:
        send(sock, INITIALIZE_RESPONSE, 0, PROTOCOL << 16 | sid)  # control 0: synchronized mode
        _sync_loop(emulator, session)
    except _Fatal as fatal:  # before the other channel is shut down: this one may be shut with it
        _fatal_error(sock, fatal)
    finally:
        emulator.hislip.remove(sid)
        other = session.asynchronous
        if other is not None:
            _shutdown(other)
        emulator.release(client, sock)


def _sync_loop(emulator: Emulator, session: _Session) -> None:
    sock, client, limit = session.sync, session.client, emulator.max_message
    message, discarding = bytearray(), False
    while True:
        kind, control, parameter, length = _header(sock, limit)
        if kind in (DATA, DATA_END, TRIGGER) and control & 1:
            session.undelivered = False  # RMT-delivered: the client has read the last response
        if kind in (DATA, DATA_END):
            if session.asynchronous is None:
                raise _Fatal(NO_BOTH_CHANNELS, "data before the asynchronous channel is established")
            payload = _recv_exact(sock, length)
            if not discarding:
                message += payload
                if len(message) > limit:
                    message, discarding = bytearray(), True
            if kind == DATA_END:
                if discarding:
                    client.too_much_data()
                else:
                    try:
                        _answer(session, bytes(message), parameter)
                    except Abandoned:
                        pass  # a device clear came while the parser was held: no answer
                message, discarding = bytearray(), False
                _handled(session, parameter)
        elif kind == TRIGGER:
            _discard(sock, length)
            client.check()
            client.trigger()
            _handled(session, parameter)
        elif kind == DEVICE_CLEAR_COMPLETE:
            _discard(sock, length)
            message, discarding = bytearray(), False
            client.clear()  # again, in order: what the sync channel ran after AsyncDeviceClear is cleared too
            with session.send_lock:
                send(sock, DEVICE_CLEAR_ACKNOWLEDGE, 0)  # feature bitmap 0: synchronized, no overlap
        elif kind == FATAL_ERROR:
            raise Closed
        else:
            _unrecognized(session, sock, kind, length)


def _handled(session: _Session, message_id: int) -> None:
    with session.client.device.cond:
        session.done_id = message_id
        session.client.device.cond.notify_all()


def _caught_up(session: _Session, next_id: int) -> None:
    """Until the sync channel has handled the client's last message (``next_id`` - 2, as pyvisa-py numbers
    them) or is held, so a status query after a write sees that write (bounded: other clients' ids differ)."""
    if next_id != FIRST_MESSAGE_ID:
        last = (next_id - 2) & 0xFFFFFFFF
        session.client.wait(lambda: session.done_id == last or session.client.held, _CATCH_UP_S)


def _answer(session: _Session, message: bytes, message_id: int) -> None:
    """Execute ``message``; each response message goes back as DataEnd with the id of the message that asked."""
    chunk = max(1, session.client_max - HEADER.size)
    for answer in session.client.execute(message):
        body = answer + b"\n"
        with session.send_lock:
            for at in range(0, len(body) - chunk, chunk):
                send(session.sync, DATA, 0, message_id, body[at : at + chunk])
            send(session.sync, DATA_END, 0, message_id, body[(len(body) - 1) // chunk * chunk :])
            session.undelivered = True


def _serve_async(emulator: Emulator, session: _Session, sock: socket.socket) -> None:
    client = session.client
    emulator.watcher.add(sock, client)
    try:
        send(sock, ASYNC_INITIALIZE_RESPONSE, 0, VENDOR)
        _async_loop(emulator, session, sock)
    except _Fatal as fatal:
        _fatal_error(sock, fatal)
    finally:
        emulator.watcher.remove(sock)
        _shutdown(session.sync)


def _async_loop(emulator: Emulator, session: _Session, sock: socket.socket) -> None:
    client, limit = session.client, emulator.max_message
    while True:
        kind, control, parameter, length = _header(sock, limit)
        if kind == ASYNC_LOCK:
            key = _recv_exact(sock, length).decode("utf-8", "replace")
            send(sock, ASYNC_LOCK_RESPONSE, _lock(session, control, parameter, key))
        elif kind == ASYNC_LOCK_INFO:
            _discard(sock, length)
            exclusive, holders = emulator.hislip.lock_info()
            send(sock, ASYNC_LOCK_INFO_RESPONSE, exclusive, holders)
        elif kind == ASYNC_MAX_MSG_SIZE:
            payload = _recv_exact(sock, length)
            if length != 8:
                raise _Fatal(POORLY_FORMED, f"AsyncMaxMsgSize with a {length}-byte payload (expected 8)")
            session.client_max = max(HEADER.size + 1, struct.unpack("!Q", payload)[0])
            send(sock, ASYNC_MAX_MSG_SIZE_RESPONSE, 0, 0, struct.pack("!Q", limit))
        elif kind == ASYNC_DEVICE_CLEAR:
            _discard(sock, length)
            client.check()
            client.abandon()
            client.clear()
            send(sock, ASYNC_DEVICE_CLEAR_ACKNOWLEDGE, 0)
        elif kind == ASYNC_STATUS_QUERY:
            _discard(sock, length)
            client.check()
            _caught_up(session, parameter)
            if control & 1:
                session.undelivered = False
            stb = client.status_byte() | (MAV if session.undelivered else 0)
            send(sock, ASYNC_STATUS_RESPONSE, stb)
        elif kind == ASYNC_REMOTE_LOCAL_CONTROL:
            _discard(sock, length)
            send(sock, ASYNC_REMOTE_LOCAL_RESPONSE)
        elif kind == FATAL_ERROR:
            raise Closed
        else:
            _unrecognized(session, sock, kind, length)


def _lock(session: _Session, control: int, parameter: int, key: str) -> int:
    """AsyncLock: request (control 1, timeout ``parameter`` ms, ``key``: shared, empty: exclusive) or release."""
    client = session.client
    if control == 0:  # release
        if not session.locks or not client.unlock():
            return LOCK_ERROR
        released = session.locks.pop()
        return LOCK_SUCCESS if released == constants.Lock.exclusive else LOCK_SUCCESS_SHARED
    if control != 1:
        return LOCK_ERROR
    lock_type = constants.Lock.shared if key else constants.Lock.exclusive
    if client.lock(lock_type, parameter, key or None) is None:
        return LOCK_FAILURE
    session.locks.append(lock_type)
    return LOCK_SUCCESS if lock_type == constants.Lock.exclusive else LOCK_SUCCESS_SHARED


def _unrecognized(session: _Session, sock: socket.socket, kind: int, length: int) -> None:
    """Error "Unrecognized Message Type"; the payload is discarded and the connection goes on."""
    _discard(sock, length)
    with session.send_lock:
        send(sock, ERROR, UNRECOGNIZED_TYPE, 0, f"message type {kind} not served on this channel".encode())


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
