"""The instrument server: one process holds a station's instruments, others call them.

The holder's :class:`~pytest_litmus.connection.StationConnection` keeps its
instruments, locks and event log; :func:`serve` lets other processes of the same
user reach them over ``multiprocessing.connection`` on 127.0.0.1, authenticated
by a random key. Every remote call runs through the holder's proxy, so one
per-instrument lock serialises the holder and all clients, and every call lands
in the holder's event log with the calling process's identity.

The key lives in a *connection file* ``<data_dir>/servers/<session>-<port>.json``
(mode 0600, as Jupyter keeps kernel files): any process of the same user and data
dir connects from the address alone (:func:`connect_remote`), or from the
``LITMUS_SERVER`` / ``LITMUS_SERVER_FILE`` variables the holder gives its
children (:attr:`InstrumentServer.environ`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import pickle
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_litmus import events
from pytest_litmus.atomicfile import write_json
from pytest_litmus.errors import LitmusError, RemoteCallError, ServerUnavailable, UnknownRole
from pytest_litmus.processes import identity, pid_alive

if TYPE_CHECKING:
    from pytest_litmus.connection import StationConnection
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.srq import SrqWaiter

__all__ = [
    "ENV_ADDRESS",
    "ENV_FILE",
    "InstrumentServer",
    "RemoteCallError",
    "RemoteInstrument",
    "RemoteRecorder",
    "RemoteSrqWaiter",
    "RemoteStation",
    "ServerInfo",
    "ServerUnavailable",
    "connect_remote",
    "find_server",
    "find_server_info",
    "list_servers",
    "serve",
]

SERVERS_DIR = "servers"
#: ``host:port`` of the server a process should use (set by the holder for its children).
ENV_ADDRESS = "LITMUS_SERVER"
#: Path of that server's connection file (so a child needs no data dir to find the key).
ENV_FILE = "LITMUS_SERVER_FILE"
DEFAULT_MAX_CLIENTS = 64
#: Seconds a peer gets to complete the key handshake before it is dropped.
HANDSHAKE_TIMEOUT = 5.0

#: ``(caller, nodeid)`` of the remote call running in this thread: who asked (pid,
#: host, user) and the test it runs. ``events.Recorder.instrument_call`` reads it
#: (``events.REMOTE_CALLER``) to record the caller and attribute the call.
REMOTE_CALLER = events.REMOTE_CALLER

_loads = pickle.loads


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


Request = tuple[str, str, str, tuple[Any, ...], dict[str, Any], "str | None"]






# --------------------------------------------------------------------------- identity and files


#: What a server keeps of a client's identity (``worker``: the pytest-xdist worker id, if any).
CALLER_KEYS = ("pid", "host", "user", "worker")


@dataclass(frozen=True)
class ServerInfo:
    """What a connection file holds: where a server is, whose it is, and its key."""

    host: str
    port: int
    pid: int
    session: str
    station: str
    roles: list[str]
    key: str
    user: str = ""
    #: The machine the server process runs on (stale files are judged only there).
    hostname: str = ""
    started: float = 0.0
    #: The holder's data dir (its session's events are there), station file and mock flag.
    data_dir: str = ""
    station_file: str = ""
    mock: bool = False
    path: Path | None = field(default=None, compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> ServerInfo:
        data = json.loads(path.read_text())
        data.pop("address", None)
        return cls(**data, path=path)

    def write(self, directory: Path) -> Path:
        """Write the file (mode 0600, atomically) into ``directory``; returns its path."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{self.session}-{self.port}.json"
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        write_json(path, {"address": self.address, **data}, mode=0o600, indent=1)
        return path


def _servers_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    from pytest_litmus.config import resolve_data_dir

    return resolve_data_dir(data_dir) / SERVERS_DIR


def list_servers(data_dir: str | os.PathLike[str] | None = None) -> list[ServerInfo]:
    """Servers with a connection file in the data dir whose process is alive (stale files are removed)."""
    found: list[ServerInfo] = []
    here = socket.gethostname()
    for path in sorted(_servers_dir(data_dir).glob("*.json")):
        try:
            info = ServerInfo.load(path)
        except (OSError, ValueError, TypeError):
            continue
        if info.hostname == here and not pid_alive(info.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(info)
    return found


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"instrument server address must be host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


def _same_address(a: str, b: str) -> bool:
    loopback = {"127.0.0.1", "localhost", ""}
    (ha, pa), (hb, pb) = _split(a), _split(b)
    return pa == pb and (ha == hb or (ha in loopback and hb in loopback))


def find_server(address: str, data_dir: str | os.PathLike[str] | None = None) -> ServerInfo:
    """The live server at ``address`` from its connection file in the data dir."""
    _split(address)
    directory = _servers_dir(data_dir)
    for info in list_servers(data_dir):
        if _same_address(info.address, address):
            return info
    raise ServerUnavailable(
        address, f"no connection file for it in {directory} (the key is there: use the server's data dir)"
    )


# --------------------------------------------------------------------------- sockets


def _set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound blocking reads on the socket (0: unbounded), without making it non-blocking."""
    from pytest_litmus._posix import set_recv_timeout

    set_recv_timeout(sock, seconds)


def _handshake(sock: socket.socket, key: bytes, *, server: bool) -> Connection[Any, Any]:
    """Wrap ``sock`` in a Connection and run the mutual HMAC challenge both ways."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _set_recv_timeout(sock, HANDSHAKE_TIMEOUT)
    conn: Connection[Any, Any] = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, key)
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
    except BaseException:
        conn.close()
        raise
    _set_recv_timeout(sock, 0)
    return conn


# --------------------------------------------------------------------------- server


class _Client:
    """One connected client: its socket, identity, and the instrument locks it holds."""

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.caller: dict[str, Any] = {}
        self.held: dict[str, tuple[threading.RLock, int]] = {}
        self.waiters: dict[int, SrqWaiter] = {}
        self.calls = 0

    def lock(self, role: str, lock: threading.RLock, timeout: float | None) -> bool:
        if not lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return False
        count = self.held.get(role, (lock, 0))[1]
        self.held[role] = (lock, count + 1)
        return True

    def unlock(self, role: str) -> None:
        lock, count = self.held.pop(role, (None, 0))
        if lock is None:
            raise RuntimeError(f"this client does not hold the lock of role {role!r}")
        lock.release()
        if count > 1:
            self.held[role] = (lock, count - 1)

    def release_all(self) -> None:
        for waiter in self.waiters.values():
            waiter.close()
        self.waiters.clear()
        for lock, count in self.held.values():
            for _ in range(count):
                lock.release()
        self.held.clear()


class InstrumentServer:
    """Serves a connection's instruments to other processes; see :func:`serve`."""

    def __init__(
        self,
        connection: StationConnection,
        roles: list[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        self.connection = connection
        self.roles = roles
        self._key = secrets.token_bytes(32)
        self._sock = socket.create_server((host, port), backlog=max(16, max_clients))
        bound_host, bound_port = self._sock.getsockname()[:2]
        self._slots = threading.BoundedSemaphore(max_clients)
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.info = ServerInfo(
            host=bound_host,
            port=bound_port,
            pid=os.getpid(),
            session=connection.session_id,
            station=connection.config.id,
            roles=list(roles),
            key=self._key.hex(),
            user=identity()["user"],
            hostname=socket.gethostname(),
            started=time.time(),
            data_dir=str(connection.data_dir),
            station_file=str(connection.config.path),
            mock=connection.mock,
        )
        self.path = self.info.write(Path(connection.data_dir) / SERVERS_DIR)
        self._thread = threading.Thread(target=self._accept_loop, name=f"litmus-server-{bound_port}", daemon=True)
        self._thread.start()
        self._emit("InstrumentServerStarted", roles=self.roles, connection_file=str(self.path))

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        return self.info.address

    @property
    def environ(self) -> dict[str, str]:
        """Variables that let a child process find this server: merge into its environment."""
        return {ENV_ADDRESS: self.address, ENV_FILE: str(self.path)}

    @property
    def clients(self) -> list[dict[str, Any]]:
        """Identities of the clients connected now."""
        with self._lock:
            return [dict(c.caller, peer=c.peer) for c in self._clients if c.caller]

    def close(self) -> None:
        """Stop accepting, drop every client (their held locks are released), remove the connection file."""
        if self._closed.is_set():
            return
        self._emit("InstrumentServerStopped", clients=len(self.clients))
        self._closed.set()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> InstrumentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "serving"
        return f"<InstrumentServer {self.address} {self.info.station} {state}>"

    # ------------------------------------------------------------------ threads

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, peer = self._sock.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                sock.close()  # at the client limit: the peer sees the handshake fail
                continue
            threading.Thread(target=self._serve_client, args=(sock, peer), name="litmus-server-client", daemon=True).start()

    def _serve_client(self, sock: socket.socket, peer: Any) -> None:
        client = _Client(sock, peer)
        with self._lock:
            self._clients.add(client)
        try:
            self._session(client)
        finally:
            client.release_all()
            with self._lock:
                self._clients.discard(client)
            sock.close()
            self._slots.release()

    def _session(self, client: _Client) -> None:
        try:
            conn = _handshake(client.sock, self._key, server=True)
        except (AuthenticationError, EOFError, OSError) as exc:
            self._emit("InstrumentClientRefused", peer=client.peer, reason=f"{type(exc).__name__}: {exc}")
            return
        with conn:
            try:
                kind, caller = conn.recv()
                if kind != "hello" or not isinstance(caller, dict):
                    return
                client.caller = {k: caller[k] for k in CALLER_KEYS if k in caller}
                conn.send(("ok", asdict(self.info) | {"key": None, "path": None}))
            except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError):
                return
            self._emit("InstrumentClientConnected", peer=client.peer, caller=client.caller)
            reason = self._serve_requests(client, conn)
            self._emit(
                "InstrumentClientDisconnected", peer=client.peer, caller=client.caller, calls=client.calls, reason=reason
            )

    def _serve_requests(self, client: _Client, conn: Connection[Any, Any]) -> str:
        while True:
            try:
                request = _loads(conn.recv_bytes())
            except EOFError:
                return "closed"
            except OSError as exc:
                return f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a request that does not unpickle here
                request, reply = None, ("raise", RemoteCallError("?", "?", type(exc).__name__, str(exc)))
            else:
                reply = self._handle(client, request)
            try:
                _send_reply(conn, request, reply)
            except OSError as exc:
                return f"{type(exc).__name__}: {exc}"

    def _emit(self, event_type: str, **fields: Any) -> None:
        if self.connection.started:
            with contextlib.suppress(LitmusError):
                self.connection.emit(event_type, server=self.address, **fields)

    # ------------------------------------------------------------------ requests

    def _proxy(self, role: str) -> Any:
        if role not in self.roles:
            raise UnknownRole(role, self.connection.config.id, self.roles, self.connection.config.path)
        return self.connection.instrument(role)

    def _handle(self, client: _Client, request: Request) -> tuple[str, Any]:
        op, role, name, args, kwargs, nodeid = request
        client.calls += 1
        token = REMOTE_CALLER.set((client.caller, nodeid))
        try:
            if name.startswith("_"):
                raise AttributeError(f"private attribute {name!r} is not served")
            return "ok", _OPS[op](self, client, role, name, args, kwargs)
        except Exception as exc:
            return "raise", _portable(exc, role, name)
        finally:
            REMOTE_CALLER.reset(token)


def _op_call(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    return getattr(server._proxy(role), name)(*args, **kwargs)


def _op_get(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    return getattr(server._proxy(role), name)


def _op_set(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    setattr(server._proxy(role), name, args[0])


def _op_describe(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    from pytest_litmus.instruments import proxy_state

    driver = proxy_state(server._proxy(role)).driver
    kinds: dict[str, list[str]] = {"methods": [], "values": []}
    for attr in dir(driver):
        if attr.startswith("_"):
            continue
        static = inspect.getattr_static(driver, attr, None)
        kinds["methods" if callable(static) and not isinstance(static, property) else "values"].append(attr)
    return {"driver": f"{type(driver).__module__}:{type(driver).__qualname__}", **kinds}


def _op_lock(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    from pytest_litmus.instruments import proxy_state

    return client.lock(role, proxy_state(server._proxy(role)).lock, args[0])


def _op_unlock(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    client.unlock(role)


def _op_emit(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    """Record an event of the client's (a measurement, a test outcome) in the holder's log."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"event type must be a non-empty string, got {name!r}")
    return server.connection.emit(name, **kwargs)


def _op_srq_arm(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    """Arm service requests on the role in the holder; returns the waiter's id for ``srq_wait``."""
    waiter = server.connection.srq(server._proxy(role), **kwargs)
    assert not isinstance(waiter, RemoteSrqWaiter)  # the holder's own connection arms locally
    client.waiters[id(waiter)] = waiter
    return id(waiter)


def _client_waiter(client: _Client, role: str, args: Any) -> SrqWaiter:
    waiter = client.waiters.get(args[0])
    if waiter is None:
        raise LitmusError(f"role {role!r}: no armed SRQ waiter {args[0]!r} for this client (closed already?)")
    return waiter


def _op_srq_wait(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    return _client_waiter(client, role, args).wait(args[1])


def _op_srq_close(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    waiter = client.waiters.pop(args[0], None)
    if waiter is not None:
        waiter.close()


_OPS: dict[str, Callable[[InstrumentServer, _Client, str, str, Any, Any], Any]] = {
    "call": _op_call,
    "get": _op_get,
    "set": _op_set,
    "describe": _op_describe,
    "lock": _op_lock,
    "unlock": _op_unlock,
    "emit": _op_emit,
    "srq_arm": _op_srq_arm,
    "srq_wait": _op_srq_wait,
    "srq_close": _op_srq_close,
}


def _portable(exc: Exception, role: str, name: str) -> Exception:
    """``exc`` if it survives a pickle round trip, else a :class:`RemoteCallError` describing it."""
    exc.add_note(f"raised in the instrument server (pid {os.getpid()}) by {role}.{name}")
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RemoteCallError(role, name, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
    return exc


def _send_reply(conn: Connection[Any, Any], request: Any, reply: tuple[str, Any]) -> None:
    try:
        data = _dumps(reply)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that cannot cross processes
        role, name = (request[1], request[2]) if isinstance(request, tuple) and len(request) > 2 else ("?", "?")
        data = _dumps(("raise", RemoteCallError(role, name, type(exc).__name__, f"result cannot be sent: {exc}")))
    conn.send_bytes(data)


def serve(
    connection: StationConnection,
    roles: list[str] | set[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_clients: int = DEFAULT_MAX_CLIENTS,
) -> InstrumentServer:
    """Serve ``roles`` (default: every role of the station) of a started connection.

    A role is opened on the holder (through ``connection.instrument``, with its
    locks) the first time a client uses it. ``port=0`` picks a free port; bind to
    another ``host`` than 127.0.0.1 only on a trusted network (the key still
    guards it, but the traffic is not encrypted). Close the server with
    :meth:`InstrumentServer.close` (or ``with``).
    """
    served = sorted(roles) if roles is not None else list(connection.config.roles)
    for role in served:
        connection.config.role(role)
    if not connection.started:
        raise LitmusError(f"session {connection.session_id} is not running: start it before serving its instruments")
    return InstrumentServer(connection, served, host=host, port=port, max_clients=max_clients)


# --------------------------------------------------------------------------- client


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
            conn = _handshake(sock, self._key, server=False)
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
            conn.send_bytes(_dumps((op, role, name, args, dict(kwargs) if kwargs else {}, self.nodeid)))
            status, value = _loads(conn.recv_bytes())
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
    def locked(self, timeout: float | None = None) -> Iterator[RemoteInstrument]:
        """Hold the instrument's lock in the holder across several calls (a write and its read).

        ``timeout`` in seconds (None: wait as long as it takes) raises ``TimeoutError``
        when the lock stays taken. If this process dies, the server releases it.
        """
        station: RemoteStation = object.__getattribute__(self, "_station")
        role: str = object.__getattribute__(self, "_role")
        if not station.request("lock", role, "lock", (timeout,)):
            raise TimeoutError(f"instrument lock of role {role!r} at {station.address} still taken after {timeout} s")
        try:
            yield self
        finally:
            station.request("unlock", role, "unlock")

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


class RemoteRecorder:
    """A :class:`~pytest_litmus.events.Recorder` for a connection joined to a server.

    Events go to the holder, which numbers them and writes them to the one log of
    the session; this process's ``litmus_event`` subscribers see the events it sent.
    """

    def __init__(self, station: RemoteStation, hooks: LitmusPluginManager) -> None:
        self.station = station
        self.hooks = hooks

    @property
    def nodeid(self) -> str | None:
        return self.station.nodeid

    @nodeid.setter
    def nodeid(self, value: str | None) -> None:
        self.station.nodeid = value

    def emit(self, type: str, fields: dict[str, Any]) -> dict[str, Any]:
        event = self.station.emit(type, fields)
        self.hooks.dispatch(event)
        return event

    def close(self) -> None:
        self.station.close()


def connect_remote(
    address: str | None = None, *, data_dir: str | os.PathLike[str] | None = None, nodeid: str | None = None
) -> RemoteStation:
    """A :class:`RemoteStation` for the server at ``address`` (``host:port``).

    The key comes from ``$LITMUS_SERVER_FILE`` when it names that server, else
    from the connection files in ``data_dir`` (resolved as ``connect()`` does).
    With no ``address``, ``$LITMUS_SERVER`` is used.
    """
    return RemoteStation(find_server_info(address, data_dir), nodeid=nodeid)


def find_server_info(address: str | None = None, data_dir: str | os.PathLike[str] | None = None) -> ServerInfo:
    """The connection file of the server at ``address`` (default ``$LITMUS_SERVER``).

    ``$LITMUS_SERVER_FILE`` is used when it names that server, else the
    connection files in ``data_dir`` (resolved as ``connect()`` does).
    """
    address = address or os.environ.get(ENV_ADDRESS)
    if not address:
        raise ServerUnavailable("(none)", f"no address given and ${ENV_ADDRESS} is not set")
    env_file = os.environ.get(ENV_FILE)
    if env_file:
        with contextlib.suppress(OSError, ValueError, TypeError):
            info = ServerInfo.load(Path(env_file))
            if _same_address(info.address, address):
                return info
    return find_server(address, data_dir)


def remote_role(instrument: object) -> str:
    """The role a :class:`RemoteInstrument` stands for."""
    if not isinstance(instrument, RemoteInstrument):
        raise LitmusError(f"{instrument!r} is not an instrument of an instrument server")
    role: str = object.__getattribute__(instrument, "_role")
    return role
