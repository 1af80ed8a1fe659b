"""Clients of an instrument server: a holder's instruments seen from another process.

:class:`RemoteStation` is one connection per thread to a server;
:class:`RemoteInstrument` forwards method calls and attribute reads of one role;
:class:`RemoteSrqWaiter` waits for a service request in the holder.

Every call has a deadline: what the holder may legitimately wait (the role's
VISA timeout, an SRQ wait's or lock wait's own timeout) plus
:attr:`RemoteStation.call_margin`. A holder that does not answer by then
(frozen, or stuck) gives :class:`ServerUnavailable`, and the connection is
dropped so the next call starts afresh. Only ``None`` waits, which the caller
asked for, wait for ever.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

from pytest_litmus.errors import LitmusError, ServerUnavailable
from pytest_litmus.sharing.files import ServerInfo, find_server_info
from pytest_litmus.sharing.wire import (
    CALL_MARGIN,
    HANDSHAKE_TIMEOUT,
    MAX_GREETING,
    MAX_MESSAGE,
    VISA_DEFAULT_TIMEOUT,
    HandshakeFailed,
    dumps,
    handshake,
    identity,
    loads,
    settle,
)

__all__ = ["RemoteInstrument", "RemoteSrqWaiter", "RemoteStation", "connect_remote", "remote_role"]

#: ``poll`` takes milliseconds in a C int: a longer wait is a wait for ever.
_LONGEST_POLL = (2**31 - 1) / 1000
#: The ``wait`` of :meth:`RemoteStation.request` when none is given.
DEFAULT: Any = object()


def _poller(conn: Connection[Any, Any]) -> Callable[[float | None], bool]:
    """``ready(seconds)``: whether ``conn`` has something to read within ``seconds`` (None: wait for ever).

    One ``poll(2)`` per call where there is one (``Connection.poll`` builds a
    selector each time, ten times the cost).
    """
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):  # Windows
        return conn.poll
    poller.register(conn.fileno(), select.POLLIN)

    def ready(seconds: float | None) -> bool:
        if seconds is None or seconds > _LONGEST_POLL:
            return bool(poller.poll())
        return bool(poller.poll(max(0, math.ceil(seconds * 1000))))

    return ready


class RemoteStation:
    """A server's instruments, seen from another process: ``instrument(role)`` forwards calls.

    Each thread gets its own connection to the server (opened on first use, and
    again after ``fork``). Set :attr:`nodeid` to attribute calls to a test in the
    holder's log. A lost server raises :class:`ServerUnavailable` on the next call,
    and so does one that does not answer within a call's deadline: what the
    holder may wait plus :attr:`call_margin` seconds.
    """

    def __init__(self, info: ServerInfo, *, nodeid: str | None = None, call_margin: float = CALL_MARGIN) -> None:
        self.info = info
        self.address = info.address
        self.nodeid = nodeid
        #: Seconds a call may take beyond what the holder waits (raise it for slow driver methods).
        self.call_margin = call_margin
        #: Seconds each role's instrument may take to answer in the holder (its VISA timeout).
        self.timeouts: dict[str, float] = {}
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
            try:
                conn.send(("hello", identity()))
                greeting = loads(conn.recv_bytes(MAX_GREETING))  # the server proved the key: its pickle may be read
                settle(sock)
            except BaseException:
                conn.close()
                raise
        except HandshakeFailed as exc:
            how = "refused the connection" if str(exc).startswith("wrong key") else "key handshake failed"
            raise ServerUnavailable(self.address, f"{how}: {exc}") from None
        except (EOFError, OSError) as exc:
            raise ServerUnavailable(self.address, f"went away while greeting ({type(exc).__name__})") from None
        except Exception as exc:
            reason = f"sent a greeting that does not unpickle ({type(exc).__name__})"
            raise ServerUnavailable(self.address, reason) from None
        finally:
            sock.close()
        if _pair(greeting, "refused"):
            conn.close()
            raise ServerUnavailable(self.address, f"refused the connection: {greeting[1]}")
        if not _pair(greeting, "ok") or not isinstance(greeting[1], dict):
            conn.close()
            raise ServerUnavailable(self.address, f"sent no greeting (got {type(greeting).__name__})")
        self.server = greeting[1]
        return conn

    def _conn(self) -> tuple[Connection[Any, Any], Callable[[float | None], bool]]:
        local = self._local
        conn: Connection[Any, Any] | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn, local.pid, local.ready = conn, os.getpid(), _poller(conn)
            with self._lock:
                self._conns.append(conn)
        return conn, local.ready

    def _connection(self) -> Connection[Any, Any] | None:
        """This thread's connection now (None when there is none), to tell whether it was dropped since."""
        conn: Connection[Any, Any] | None = getattr(self._local, "conn", None)
        return conn if conn is not None and self._local.pid == os.getpid() else None

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def _open_wait(self, role: str) -> float | None:
        """What opening ``role`` in the holder may wait: its lock timeout (None: for ever) and the instrument's."""
        lock_timeout = self.server.get("lock_timeout", 0.0)
        if lock_timeout is None:
            return None
        return float(lock_timeout) + self.timeouts.get(role, VISA_DEFAULT_TIMEOUT)

    def request(
        self,
        op: str,
        role: str,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        wait: float | None = DEFAULT,
    ) -> Any:
        """Send one request and return its result, or raise the exception it raised in the server.

        ``wait`` is how long the holder may legitimately take, in seconds (None:
        for ever; default: the role's instrument timeout, or a numeric
        ``timeout=`` keyword of the call when longer); no answer within ``wait`` plus
        :attr:`call_margin` raises :class:`ServerUnavailable` and drops the
        connection, the call having perhaps run.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this forwarding
        if wait is DEFAULT:
            wait = self.timeouts.get(role, VISA_DEFAULT_TIMEOUT)
            asked = kwargs.get("timeout") if kwargs else None
            if isinstance(asked, (int, float)) and asked > wait:  # None may mean "the default": no hang
                wait = asked
        deadline = None if wait is None else wait + self.call_margin
        conn, ready = self._conn()
        try:
            conn.send_bytes(dumps((op, role, name, args, dict(kwargs) if kwargs else {}, self.nodeid)))
            if not ready(deadline):
                self._drop()
                raise ServerUnavailable(
                    self.address,
                    f"no answer to {role}.{name} within {deadline:g} s (holder frozen or stuck?); "
                    "the call may or may not have run",
                )
            data = conn.recv_bytes(MAX_MESSAGE)
        except (EOFError, OSError) as exc:
            if isinstance(exc, ServerUnavailable):
                raise
            self._drop()
            raise ServerUnavailable(
                self.address, f"went away during {role}.{name} ({type(exc).__name__}); the call may or may not have run"
            ) from None
        except BaseException:  # interrupted between request and reply: the stream is out of step
            self._drop()
            raise
        try:
            reply = loads(data)
        except Exception as exc:
            reply = exc
        if type(reply) is tuple and len(reply) == 2:
            status, value = reply
            if status == "ok":
                return value
            if status == "raise" and isinstance(value, BaseException):
                raise value
        self._drop()
        raise ServerUnavailable(
            self.address, f"sent junk in reply to {role}.{name} ({_sketch(reply)}); the call may or may not have run"
        )

    def instrument(self, role: str) -> RemoteInstrument:
        """The role's instrument in the holder, as a forwarding proxy (the same object per role)."""
        found = self._instruments.get(role)
        if found is None:
            self._conn()  # the greeting says how long opening may take
            description = self.request("describe", role, "describe", wait=self._open_wait(role))
            timeout = description.get("timeout") if isinstance(description, dict) else None
            if isinstance(timeout, (int, float)) and timeout > 0:
                self.timeouts[role] = float(timeout)
            found = RemoteInstrument(self, role, description)
            self._instruments[role] = found
        return found

    def emit(self, event_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Record an event in the holder's log (it adds ``seq``, ``ts`` and this ``caller``); returns it."""
        event: dict[str, Any] = self.request("emit", "", event_type, (), fields)
        return event

    def srq(self, role: str, *, ese: int = 1, sre: int = 32, mechanism: str | None = None) -> RemoteSrqWaiter:
        """Arm service requests on ``role`` in the holder; the waiter waits there (see docs/srq.md)."""
        self._conn()
        arm = {"ese": ese, "sre": sre, "mechanism": mechanism}
        waiter_id = self.request("srq_arm", role, "srq", (), arm, wait=self._open_wait(role))
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
            raise AttributeError(
                f"{object.__getattribute__(self, '_driver')} of role {role!r} has no attribute {name!r}"
            )
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
        if not station.request("lock", role, "lock", (timeout,), wait=timeout):
            raise TimeoutError(f"instrument lock of role {role!r} at {station.address} still taken after {timeout} s")
        conn = station._connection()
        try:
            yield self
        finally:
            if station._connection() is conn:  # a dropped connection gave the lock up in the holder
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
        status: int = self.station.request("srq_wait", self.role, "wait", (self._id, timeout), wait=timeout)
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


def _pair(value: Any, tag: str) -> bool:
    """Whether ``value`` is a ``(tag, something)`` tuple."""
    return type(value) is tuple and len(value) == 2 and value[0] == tag


def _sketch(value: Any) -> str:
    """A short description of a reply that is not one."""
    if isinstance(value, Exception):
        return f"does not unpickle: {type(value).__name__}"
    if isinstance(value, tuple):
        return f"tuple of {len(value)}"
    return type(value).__name__
