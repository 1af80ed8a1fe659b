"""The instrument server: one process holds a station's instruments, others call them.

The holder's station keeps its instruments, locks and event log; :func:`serve`
lets other processes of the same user reach them on 127.0.0.1, authenticated by
a random key kept in a connection file (see :mod:`.files`). Every remote call
runs through the holder's proxy, so one per-instrument lock serialises the
holder and all clients, and every call lands in the holder's event log with the
calling process's identity. The server needs only the :class:`Station`
protocol of the holder, never its class.

Unauthenticated connections get a budget of their own (:data:`MAX_HANDSHAKES`
at once, the oldest dropped when a new one arrives); a client takes one of the
``max_clients`` slots only once it has proved the key, so idle sockets cannot
lock keyed clients out. Nothing a peer sends ends in a raw traceback: junk
before the key is an ``InstrumentClientRefused`` event, a malformed request
after it an error reply.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import secrets
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_litmus.errors import LitmusError, RemoteCallError, UnknownRole
from pytest_litmus.events import REMOTE_CALLER
from pytest_litmus.eventtypes import EventType
from pytest_litmus.instruments import proxy_state
from pytest_litmus.sharing.files import ENV_ADDRESS, ENV_FILE, SERVERS_DIR, ServerInfo
from pytest_litmus.sharing.wire import (
    CALLER_KEYS,
    MAX_GREETING,
    MAX_HANDSHAKES,
    MAX_MESSAGE,
    VISA_DEFAULT_TIMEOUT,
    HandshakeFailed,
    dumps,
    handshake,
    identity,
    loads,
    settle,
)

if TYPE_CHECKING:
    from pytest_litmus.station import SrqWaiterLike, Station

__all__ = ["DEFAULT_MAX_CLIENTS", "InstrumentServer", "serve"]

DEFAULT_MAX_CLIENTS = 64


class _Client:
    """One connected client: its socket, identity, and the instrument locks it holds."""

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.caller: dict[str, Any] = {}
        #: Dropped from the handshake budget by newer connections; holds a client slot.
        self.evicted = False
        self.slot = False
        self.held: dict[str, tuple[threading.RLock, int]] = {}
        self.waiters: dict[int, SrqWaiterLike] = {}
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
        connection: Station,
        roles: list[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_handshakes: int = MAX_HANDSHAKES,
    ) -> None:
        self.connection = connection
        self.roles = roles
        self.max_clients = max_clients
        self.max_handshakes = max(1, max_handshakes)
        self._key = secrets.token_bytes(32)
        self._sock = socket.create_server((host, port), backlog=max(128, max_clients))
        bound_host, bound_port = self._sock.getsockname()[:2]
        self._slots = threading.BoundedSemaphore(max_clients)
        self._clients: set[_Client] = set()
        #: Connections still in the key handshake, oldest first.
        self._pending: dict[socket.socket, _Client] = {}
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
            limits_file=str(connection.config.limits.path) if connection.config.limits else "",
            limits_sha256=connection.config.limits.sha256 if connection.config.limits else "",
        )
        self.path = self.info.write(Path(connection.data_dir) / SERVERS_DIR)
        self._thread = threading.Thread(target=self._accept_loop, name=f"litmus-server-{bound_port}", daemon=True)
        self._thread.start()
        self._emit(EventType.SERVER_STARTED, roles=self.roles, connection_file=str(self.path))

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
        self._emit(EventType.SERVER_STOPPED, clients=len(self.clients))
        self._closed.set()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            clients = [*self._clients, *self._pending.values()]
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
            client = _Client(sock, peer)
            with self._lock:
                while len(self._pending) >= self.max_handshakes:  # drop the oldest unauthenticated peer
                    oldest = self._pending.pop(next(iter(self._pending)))
                    oldest.evicted = True
                    with contextlib.suppress(OSError):
                        oldest.sock.shutdown(socket.SHUT_RDWR)
                self._pending[sock] = client
            try:
                threading.Thread(
                    target=self._serve_client, args=(client,), name="litmus-server-client", daemon=True
                ).start()
            except RuntimeError:  # no thread to be had: the peer sees the handshake fail
                with self._lock:
                    self._pending.pop(sock, None)
                sock.close()

    def _authenticated(self, client: _Client) -> bool:
        """The peer proved the key: leave the handshake budget, take a client slot if one is free."""
        with self._lock:
            if client.evicted or self._pending.pop(client.sock, None) is None:
                return False
            client.slot = self._slots.acquire(blocking=False)
            if client.slot:
                self._clients.add(client)
        return True

    def _serve_client(self, client: _Client) -> None:
        try:
            self._session(client)
        except Exception as exc:  # a bug here must not print a traceback per peer; record it instead
            self._emit(EventType.CLIENT_REFUSED, peer=client.peer, reason=f"server error: {type(exc).__name__}: {exc}")
        finally:
            client.release_all()
            with self._lock:
                self._pending.pop(client.sock, None)
                self._clients.discard(client)
            client.sock.close()
            if client.slot:
                self._slots.release()

    def _refuse(self, client: _Client, reason: str) -> None:
        self._emit(EventType.CLIENT_REFUSED, peer=client.peer, reason=reason)

    def _session(self, client: _Client) -> None:
        try:
            conn = handshake(client.sock, self._key, server=True, proved=lambda: self._authenticated(client))
        except HandshakeFailed as exc:
            if client.evicted:
                waited = f"{self.max_handshakes} newer connections waited"
                self._refuse(client, f"dropped before the key handshake: {waited}")
            else:
                self._refuse(client, str(exc))
            return
        with conn:
            try:
                hello = loads(conn.recv_bytes(MAX_GREETING))
                greeted = type(hello) is tuple and len(hello) == 2 and hello[0] == "hello"
                if not greeted or not isinstance(hello[1], dict):
                    self._refuse(client, f"no greeting after the key handshake (got {type(hello).__name__})")
                    return
                if not client.slot:
                    conn.send(("refused", f"at its client limit ({self.max_clients} clients)"))
                    self._refuse(client, f"at the client limit ({self.max_clients} clients)")
                    return
                client.caller = {k: v for k in CALLER_KEYS if isinstance(v := hello[1].get(k), (str, int))}
                conn.send(("ok", self._greeting()))
                settle(client.sock)
            except (EOFError, OSError) as exc:
                self._refuse(client, f"greeting failed ({type(exc).__name__}: {exc})")
                return
            except Exception as exc:  # a keyed peer's greeting that does not unpickle
                self._refuse(client, f"greeting does not unpickle ({type(exc).__name__})")
                return
            self._emit(EventType.CLIENT_CONNECTED, peer=client.peer, caller=client.caller)
            reason = self._serve_requests(client, conn)
            self._emit(
                EventType.CLIENT_DISCONNECTED, peer=client.peer, caller=client.caller, calls=client.calls, reason=reason
            )

    def _greeting(self) -> dict[str, Any]:
        """What a client learns on connecting: the public connection info and the holder's lock timeout."""
        lock_timeout = getattr(self.connection, "lock_timeout", 0.0)
        if not (lock_timeout is None or isinstance(lock_timeout, (int, float))):
            lock_timeout = 0.0
        return {**self.info.public(), "lock_timeout": lock_timeout}

    def _serve_requests(self, client: _Client, conn: Connection[Any, Any]) -> str:
        while True:
            try:
                data = conn.recv_bytes(MAX_MESSAGE)
            except EOFError:
                return "closed"
            except OSError as exc:  # includes a frame over MAX_MESSAGE: the stream is out of step
                return f"{type(exc).__name__}: {exc}"
            try:
                request = loads(data)
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

    def _handle(self, client: _Client, request: Any) -> tuple[str, Any]:
        if not _well_formed(request):
            return "raise", RemoteCallError("?", "?", "ValueError", f"malformed request: {_sketch(request)}")
        op, role, name, args, kwargs, nodeid = request
        client.calls += 1
        token = REMOTE_CALLER.set((client.caller, nodeid))
        try:
            if name.startswith("_"):
                raise AttributeError(f"private attribute {name!r} is not served")
            handler = _OPS.get(op)
            if handler is None:
                raise LitmusError(f"unknown instrument server operation {op!r}")
            return "ok", handler(self, client, role, name, args, kwargs)
        except Exception as exc:
            return "raise", portable(exc, role, name)
        finally:
            REMOTE_CALLER.reset(token)


def _well_formed(request: Any) -> bool:
    """Whether ``request`` is a :data:`~.wire.Request` by its types (a keyed peer may still be buggy)."""
    return (
        type(request) is tuple
        and len(request) == 6
        and isinstance(request[0], str)
        and isinstance(request[1], str)
        and isinstance(request[2], str)
        and isinstance(request[3], tuple)
        and isinstance(request[4], dict)
        and (request[5] is None or isinstance(request[5], str))
    )


def _sketch(value: Any) -> str:
    """A short description of a malformed request, for the error sent back."""
    if isinstance(value, tuple):
        return f"tuple of {len(value)} ({', '.join(type(v).__name__ for v in value[:6])})"
    return type(value).__name__


def _op_call(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    return getattr(server._proxy(role), name)(*args, **kwargs)


def _op_get(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    return getattr(server._proxy(role), name)


def _op_set(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    setattr(server._proxy(role), name, args[0])


def _op_describe(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
    driver = proxy_state(server._proxy(role)).driver
    kinds: dict[str, list[str]] = {"methods": [], "values": []}
    for attr in dir(driver):
        if attr.startswith("_"):
            continue
        static = inspect.getattr_static(driver, attr, None)
        kinds["methods" if callable(static) and not isinstance(static, property) else "values"].append(attr)
    timeout_ms = server.connection.config.role(role).timeout_ms
    timeout = timeout_ms / 1000 if timeout_ms else VISA_DEFAULT_TIMEOUT
    return {"driver": f"{type(driver).__module__}:{type(driver).__qualname__}", "timeout": timeout, **kinds}


def _op_lock(server: InstrumentServer, client: _Client, role: str, name: str, args: Any, kwargs: Any) -> Any:
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
    client.waiters[id(waiter)] = waiter
    return id(waiter)


def _client_waiter(client: _Client, role: str, args: Any) -> SrqWaiterLike:
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


def portable(exc: Exception, role: str, name: str) -> Exception:
    """``exc`` if it survives a pickle round trip, else a :class:`RemoteCallError` describing it."""
    exc.add_note(f"raised in the instrument server (pid {os.getpid()}) by {role}.{name}")
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RemoteCallError(role, name, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
    return exc


def _send_reply(conn: Connection[Any, Any], request: Any, reply: tuple[str, Any]) -> None:
    try:
        data = dumps(reply)
    except Exception as exc:  # a result that cannot cross processes
        role, name = (request[1], request[2]) if isinstance(request, tuple) and len(request) > 2 else ("?", "?")
        data = dumps(("raise", RemoteCallError(role, name, type(exc).__name__, f"result cannot be sent: {exc}")))
    conn.send_bytes(data)


def serve(
    connection: Station,
    roles: list[str] | set[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_clients: int = DEFAULT_MAX_CLIENTS,
    max_handshakes: int = MAX_HANDSHAKES,
) -> InstrumentServer:
    """Serve ``roles`` (default: every role of the station) of a started connection.

    A role is opened on the holder (through ``connection.instrument``, with its
    locks) the first time a client uses it. ``port=0`` picks a free port; bind to
    another ``host`` than 127.0.0.1 only on a trusted network (the key still
    guards it, but the traffic is not encrypted). Close the server with
    :meth:`InstrumentServer.close` (or ``with``). ``max_handshakes`` bounds
    the connections waiting to prove the key; ``max_clients`` those that have.
    """
    served = sorted(roles) if roles is not None else list(connection.config.roles)
    for role in served:
        connection.config.role(role)
    if not connection.started:
        raise LitmusError(f"session {connection.session_id} is not running: start it before serving its instruments")
    return InstrumentServer(
        connection, served, host=host, port=port, max_clients=max_clients, max_handshakes=max_handshakes
    )
