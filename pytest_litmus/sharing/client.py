"""Clients of an instrument server: a holder's instruments seen from another process.

:class:`RemoteStation` is one connection per thread to a server;
:class:`RemoteInstrument` forwards method calls and attribute reads of one role;
:class:`RemoteSrqWaiter` waits for a service request in the holder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection
from typing import Any

from pytest_litmus.errors import LitmusError, ServerUnavailable
from pytest_litmus.sharing.files import ServerInfo, find_server_info
from pytest_litmus.sharing.wire import HANDSHAKE_TIMEOUT, dumps, handshake, identity, loads

__all__ = ["RemoteInstrument", "RemoteSrqWaiter", "RemoteStation", "connect_remote", "remote_role"]


class RemoteStation:
    """A server's instruments, seen from another process: ``instrument(role)`` forwards calls.

    Each thread gets its own connection to the server (opened on first use, and
    again after ``fork``). Set :attr:`nodeid` to attribute calls to a test in the
    holder's log. A lost server raises :class:`ServerUnavailable` on the next call.
    """

    def __init__(self, info: ServerInfo, *, nodeid: str | None = None) -> None:
        self.info = info
        self.address = info.address
        self.nodeid = nodeid
        self._key = bytes.fromhex(info.key)
        self._local = threading.local()
        self._conns: list[Connection[Any, Any]] = []
        self._lock = threading.Lock()
        self._instruments: dict[str, RemoteInstrument] = {}
        self.server: dict[str, Any] = {}
        self._conn()  # fail now, not on the first call, if the server is not there

    @property
    def session_id(self) -> str:
        return self.info.session

    @property
    def roles(self) -> list[str]:
        return list(self.info.roles)

    def _connect(self) -> Connection[Any, Any]:
        try:
            sock = socket.create_connection((self.info.host, self.info.port), timeout=HANDSHAKE_TIMEOUT)
        except OSError as exc:
            raise ServerUnavailable(self.address, f"cannot connect ({exc.strerror or exc})") from None
        try:
            sock.settimeout(None)
            conn = handshake(sock, self._key, server=False)
        except AuthenticationError:
            raise ServerUnavailable(self.address, "refused the connection: wrong key") from None
        except (EOFError, OSError) as exc:
            reason = "closed the connection during the handshake (wrong key, or at its client limit)"
            raise ServerUnavailable(self.address, f"{reason}: {type(exc).__name__}") from None
        finally:
            sock.close()
        try:
            conn.send(("hello", identity()))
            _, self.server = conn.recv()
        except (EOFError, OSError) as exc:
            conn.close()
            raise ServerUnavailable(self.address, f"went away while greeting ({type(exc).__name__})") from None
        return conn

    def _conn(self) -> Connection[Any, Any]:
        local = self._local
        conn: Connection[Any, Any] | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def request(self, op: str, role: str, name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
        """Send one request and return its result, or raise the exception it raised in the server."""
        __tracebackhide__ = True  # pytest shows the test's line, not this forwarding
        conn = self._conn()
        try:
            conn.send_bytes(dumps((op, role, name, args, dict(kwargs) if kwargs else {}, self.nodeid)))
            status, value = loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self._drop()
            raise ServerUnavailable(
                self.address, f"went away during {role}.{name} ({type(exc).__name__}); the call may or may not have run"
            ) from None
        if status == "raise":
            raise value
        return value

    def instrument(self, role: str) -> RemoteInstrument:
        """The role's instrument in the holder, as a forwarding proxy (the same object per role)."""
        found = self._instruments.get(role)
        if found is None:
            found = RemoteInstrument(self, role, self.request("describe", role, "describe"))
            self._instruments[role] = found
        return found

    def emit(self, event_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Record an event in the holder's log (it adds ``seq``, ``ts`` and this ``caller``); returns it."""
        event: dict[str, Any] = self.request("emit", "", event_type, (), fields)
        return event

    def srq(self, role: str, *, ese: int = 1, sre: int = 32, mechanism: str | None = None) -> RemoteSrqWaiter:
        """Arm service requests on ``role`` in the holder; the waiter waits there (see docs/srq.md)."""
        waiter_id = self.request("srq_arm", role, "srq", (), {"ese": ese, "sre": sre, "mechanism": mechanism})
        return RemoteSrqWaiter(self, role, waiter_id)

    def close(self) -> None:
        """Close every connection of every thread (held instrument locks are released by the server)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> RemoteStation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteStation {self.address} {self.info.station} session {self.info.session}>"


class RemoteInstrument:
    """Stands in for a driver held by another process: method calls and attribute reads are forwarded."""

    def __init__(self, station: RemoteStation, role: str, description: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_station", station)
        object.__setattr__(self, "_role", role)
        object.__setattr__(self, "_methods", frozenset(description["methods"]))
        object.__setattr__(self, "_values", frozenset(description["values"]))
        object.__setattr__(self, "_driver", description["driver"])

    def __getattr__(self, name: str) -> Any:
        station: RemoteStation = object.__getattribute__(self, "_station")
        role: str = object.__getattribute__(self, "_role")
        if name in object.__getattribute__(self, "_values"):
            return station.request("get", role, name)
        if name not in object.__getattribute__(self, "_methods"):
            raise AttributeError(f"{object.__getattribute__(self, '_driver')} of role {role!r} has no attribute {name!r}")
        request = station.request

        def forward(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            return request("call", role, name, args, kwargs)

        forward.__name__ = name
        object.__setattr__(self, name, forward)
        return forward

    def __setattr__(self, name: str, value: Any) -> None:
        station: RemoteStation = object.__getattribute__(self, "_station")
        station.request("set", object.__getattribute__(self, "_role"), name, (value,))

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_methods") | object.__getattribute__(self, "_values"))

    @contextlib.contextmanager
    def lock_context(self, timeout: float | None = None) -> Iterator[RemoteInstrument]:
        """Keep the instrument this caller's, in the holder, across several calls (a write and its read).

        PyVISA's name for the same idea. ``timeout`` in seconds (None: wait as
        long as it takes) raises ``TimeoutError`` when the lock stays taken. If
        this process dies, the server releases it.
        """
        station: RemoteStation = object.__getattribute__(self, "_station")
        role: str = object.__getattribute__(self, "_role")
        if not station.request("lock", role, "lock", (timeout,)):
            raise TimeoutError(f"instrument lock of role {role!r} at {station.address} still taken after {timeout} s")
        try:
            yield self
        finally:
            station.request("unlock", role, "unlock")

    #: The name this had before ``lock_context``; kept working.
    locked = lock_context

    def __repr__(self) -> str:
        station: RemoteStation = object.__getattribute__(self, "_station")
        return f"<RemoteInstrument {object.__getattribute__(self, '_role')} at {station.address}>"


class RemoteSrqWaiter:
    """An SRQ waiter armed in the holder: ``wait`` blocks there and returns the status byte.

    It lives on this thread's connection to the server (as instrument locks do):
    wait and close it from the thread that armed it.
    """

    def __init__(self, station: RemoteStation, role: str, waiter_id: int) -> None:
        self.station = station
        self.role = role
        self._id: int | None = waiter_id

    def wait(self, timeout: float | None = 10.0) -> int:
        """The status byte once the instrument requests service; ``SrqTimeout`` after ``timeout`` s."""
        if self._id is None:
            raise LitmusError(f"SRQ waiter of role {self.role!r} is closed")
        status: int = self.station.request("srq_wait", self.role, "wait", (self._id, timeout))
        return status

    def close(self) -> None:
        """Disarm it in the holder (a lost server has disarmed it already)."""
        waiter_id, self._id = self._id, None
        if waiter_id is not None:
            with contextlib.suppress(ServerUnavailable):
                self.station.request("srq_close", self.role, "close", (waiter_id,))

    def __enter__(self) -> RemoteSrqWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteSrqWaiter {self.role} at {self.station.address}>"


def connect_remote(
    address: str | None = None, *, data_dir: str | os.PathLike[str] | None = None, nodeid: str | None = None
) -> RemoteStation:
    """A :class:`RemoteStation` for the server at ``address`` (``host:port``).

    The key comes from ``$LITMUS_SERVER_FILE`` when it names that server, else
    from the connection files in ``data_dir`` (resolved as ``connect()`` does).
    With no ``address``, ``$LITMUS_SERVER`` is used.
    """
    return RemoteStation(find_server_info(address, data_dir), nodeid=nodeid)


def remote_role(instrument: object) -> str:
    """The role a :class:`RemoteInstrument` stands for."""
    if not isinstance(instrument, RemoteInstrument):
        raise LitmusError(f"{instrument!r} is not an instrument of an instrument server")
    role: str = object.__getattribute__(instrument, "_role")
    return role
