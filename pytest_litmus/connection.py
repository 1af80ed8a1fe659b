"""``connect()`` and :class:`StationConnection`: a station session outside or inside pytest.

A connection owns one session: its event file, its instruments (opened lazily,
per role, and wrapped in proxies) and, in later layers, their locks. The pytest
fixtures are thin glue over this same object.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pytest_litmus.config import LockMode, StationConfig, resolve_data_dir
from pytest_litmus.errors import LitmusError, StationConfigError
from pytest_litmus.events import EventFile, Recorder, events_path, filter_events, read_events
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.instruments import InstrumentProxy, open_driver, proxy_state
from pytest_litmus.locking import Lease, LockOwner, current_user
from pytest_litmus.measurements import Measurement, judge

if TYPE_CHECKING:
    from pytest_litmus.server import (
        InstrumentServer,
        RemoteInstrument,
        RemoteRecorder,
        RemoteSrqWaiter,
        RemoteStation,
        ServerInfo,
    )
    from pytest_litmus.srq import SrqWaiter

SessionOutcome = Literal["passed", "failed", "errored", "terminated"]
SESSION_OUTCOMES: tuple[SessionOutcome, ...] = ("passed", "failed", "errored", "terminated")

__all__ = ["SessionOutcome", "StationConnection", "connect"]


def connect(
    station: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mock: bool | None = None,
    server: str | None = None,
) -> StationConnection:
    """A :class:`StationConnection` for ``station``; nothing is opened until ``start()`` (or ``with``).

    Arguments left None resolve as under pytest (:mod:`pytest_litmus.settings`):
    ``station`` -> ``$LITMUS_STATION`` -> ``default_station`` of ``litmus.yaml``;
    ``mock`` -> ``$LITMUS_MOCK`` -> off; ``data_dir`` -> ``litmus.yaml``
    ``data_dir`` -> ``$LITMUS_HOME`` -> the user data dir; the lock timeout is
    ``$LITMUS_LOCK_TIMEOUT`` -> 0.

    ``server="host:port"`` joins the session of that instrument server instead:
    its instruments are the holder's, reached through the server, and events go
    to the holder's log. Without ``server``, ``$LITMUS_SERVER`` (which a holder
    sets for its children) is joined when it serves ``station`` (or ``station``
    is None). See docs/sharing.md.
    """
    from pytest_litmus import settings
    from pytest_litmus.server import ENV_ADDRESS, find_server_info

    hooks = LitmusPluginManager()
    hooks.load_setuptools_entrypoints("litmus")
    address = server or os.environ.get(ENV_ADDRESS)
    if address:
        info = find_server_info(address, data_dir)
        if station is None or station == info.station:
            if mock and not info.mock:
                raise LitmusError(
                    f"instrument server {address} holds the real instruments of {info.station!r}; mock=True cannot join it"
                )
            return StationConnection.join(info, hooks=hooks)
        if server is not None:  # an inherited $LITMUS_SERVER of another station is simply not joined
            raise LitmusError(f"instrument server {address} serves station {info.station!r}, not {station!r}")
    resolved = settings.resolve({"station": (station, "station="), "mock": (mock, "mock="), "data_dir": (data_dir, "data_dir=")})
    return StationConnection(
        resolved.load_station(), data_dir=resolved.data_dir.value, mock=resolved.mock.value, hooks=hooks,
        lock_timeout=resolved.lock_timeout.value,
    )


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in ("pytest-litmus", "pyvisa", "pyvisa-py", "pyvisa-sim", "pytest"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found


class StationConnection:
    """One session on one station: event log, instruments by role, measurements.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The
    session outcome on ``__exit__``: no exception -> ``passed``,
    ``KeyboardInterrupt``/``SystemExit`` -> ``terminated``, other -> ``errored``.
    """

    def __init__(
        self,
        station_config: StationConfig,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        mock: bool = False,
        hooks: LitmusPluginManager | None = None,
        argv: Sequence[str] | None = None,
        lock_timeout: float | None = 0.0,
    ) -> None:
        self.config = station_config
        self.data_dir = Path(data_dir) if data_dir is not None else resolve_data_dir()
        self.mock = mock
        self.session_id = str(uuid.uuid4())
        #: How many processes meet at :meth:`sync` when it is not told (the plugin sets the xdist worker count).
        self.sync_parties: int | None = None
        self._joined: ServerInfo | None = None
        self._remote: RemoteStation | None = None
        self.hooks = hooks if hooks is not None else LitmusPluginManager()
        self.lock_timeout = lock_timeout
        self.instruments: dict[str, InstrumentProxy] = {}
        self.leases: dict[str, Lease] = {}
        self._owner: LockOwner | None = None
        self._server: InstrumentServer | None = None
        self.counts: Counter[str] = Counter()
        self._argv = list(argv) if argv is not None else list(sys.argv)
        self._recorder: Recorder | RemoteRecorder | None = None
        self._rm: Any = None
        self._lock = threading.RLock()
        self._state: Literal["new", "started", "stopped"] = "new"
        self._outcome: SessionOutcome | None = None

    @classmethod
    def join(
        cls, server: ServerInfo, *, hooks: LitmusPluginManager | None = None, config: StationConfig | None = None
    ) -> StationConnection:
        """A connection into the session that the instrument server ``server`` belongs to.

        ``instrument(role)`` returns the holder's instrument through the server;
        events (measurements, test outcomes) are recorded in the holder's log,
        numbered by it, with this process as their ``caller``. ``start()``
        connects, ``stop()`` disconnects; the session and its locks stay the
        holder's. ``config`` defaults to the server's station file.
        """
        if config is None:
            from pytest_litmus.config import load_station_file

            config = load_station_file(Path(server.station_file))
        connection = cls(config, data_dir=server.data_dir, mock=server.mock, hooks=hooks)
        connection.session_id = server.session
        connection._joined = server
        return connection

    @property
    def remote(self) -> RemoteStation | None:
        """The server this connection joined (None: it holds its own instruments)."""
        return self._remote

    # ------------------------------------------------------------------ lifecycle

    @property
    def event_log(self) -> Path:
        """The session's ``events.jsonl`` (written from :meth:`start` on)."""
        return events_path(self.data_dir, self.session_id)

    @property
    def started(self) -> bool:
        return self._state == "started"

    def start(self) -> StationConnection:
        """Create the event file and record ``SessionStarted``; returns self."""
        with self._lock:
            if self._state != "new":
                raise LitmusError(f"session {self.session_id} was already {self._state}; one StationConnection per session")
            if self._joined is not None:
                from pytest_litmus.server import RemoteRecorder, RemoteStation

                self._remote = RemoteStation(self._joined)
                self._recorder = RemoteRecorder(self._remote, self.hooks)
            else:
                self._recorder = Recorder(self.session_id, EventFile(self.event_log), self.hooks)
            self._state = "started"
            atexit.register(self._at_exit)
        if self._remote is not None:
            return self  # the holder recorded SessionStarted, and records this client's arrival
        self.emit(
            "SessionStarted",
            station=self.config.id,
            station_file=str(self.config.path),
            description=self.config.description,
            roles=self.config.roles,
            mock=self.mock,
            host=socket.gethostname(),
            user=current_user(),
            pid=os.getpid(),
            argv=self._argv,
            cwd=os.getcwd(),
            data_dir=str(self.data_dir),
            versions=_versions(),
        )
        return self

    def stop(self, outcome: SessionOutcome = "passed") -> None:
        """Release every instrument (reverse order), record ``SessionEnded``, close the log.

        A joined connection (see :meth:`join`) only disconnects: the session is the holder's.
        """
        if outcome not in SESSION_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(SESSION_OUTCOMES)}, got {outcome!r}")
        with self._lock:
            if self._state != "started":
                return
            try:
                if self._server is not None:
                    server, self._server = self._server, None
                    server.close()
                for role in reversed(list(self.instruments)):
                    self._release(role)
                if self._owner is not None:
                    self._owner.release_all()
                if self._rm is not None:
                    self._rm.close()
                    self._rm = None
            finally:
                self._outcome = outcome
                if self._remote is None:
                    self.emit("SessionEnded", outcome=outcome, counts=dict(self.counts))
                assert self._recorder is not None
                self._recorder.close()
                self._state = "stopped"
                atexit.unregister(self._at_exit)

    @property
    def outcome(self) -> SessionOutcome | None:
        """The outcome the session ended with; None while it runs."""
        return self._outcome

    def _at_exit(self) -> None:
        self.stop("terminated")

    def __enter__(self) -> StationConnection:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.stop("passed")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.stop("terminated")
        else:
            self.stop("errored")

    # ------------------------------------------------------------------ events

    def _require_started(self) -> Recorder | RemoteRecorder:
        recorder = self._recorder
        if recorder is None or self._state != "started":
            raise LitmusError(f"session {self.session_id} is not running: call start() or use 'with connect(...)'")
        return recorder

    @property
    def nodeid(self) -> str | None:
        """The test that instrument calls and measurements are attributed to."""
        return self._recorder.nodeid if self._recorder is not None else None

    @nodeid.setter
    def nodeid(self, value: str | None) -> None:
        self._require_started().nodeid = value

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Record an event of ``event_type`` with ``fields``; returns it.

        Test outcomes and measurements are counted for ``SessionEnded``, also
        those that clients of the instrument server record here.
        """
        event = self._require_started().emit(event_type, fields)
        if event_type == "TestOutcome" or event_type == "Measurement":
            key = str(fields.get("outcome"))
            with self._lock:
                self.counts[key if event_type == "TestOutcome" else f"measurements_{key}"] += 1
        return event

    def events(self, event_type: str | Sequence[str] | None = None, role: str | None = None) -> list[dict[str, Any]]:
        """Events of this session so far, from its file, optionally filtered."""
        if not self.event_log.exists():
            return []
        return list(filter_events(read_events(self.event_log), event_type, role))

    def configure(self, role: str, method: str, **parameters: Any) -> None:
        """Record an ``InstrumentConfigure`` event (an operation done outside the proxy, e.g. from a UI)."""
        self.config.role(role)
        self.emit("InstrumentConfigure", role=role, method=method, parameters=parameters, nodeid=self.nodeid)

    def observe(self, key: str, value: Any, *, units: str | None = None) -> str:
        """Record an ``Observation`` (a sample outside any limit); returns a reference to it."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"observation key must be a non-empty string, got {key!r}")
        event = self.emit("Observation", key=key, value=value, units=units, nodeid=self.nodeid)
        return f"channel://{self.session_id}/{key}#{event['seq']}"

    def measure(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement:
        """Judge and record a ``Measurement``; returns it (it never raises for a failed value)."""
        measurement = judge(name, value, units=units, low=low, high=high, nodeid=self.nodeid)
        self.emit("Measurement", **measurement.fields())
        return measurement

    def test_started(self, nodeid: str) -> None:
        """Record ``TestStarted`` and attribute what follows to ``nodeid``."""
        self.nodeid = nodeid
        for lease in list(self.leases.values()):
            if lease.held and lease.kind != "none":
                lease.annotate(nodeid=nodeid)  # `litmus locks` shows which test holds it
        self.emit("TestStarted", nodeid=nodeid)

    def test_finished(self, nodeid: str, outcome: str, duration: float, message: str | None = None) -> None:
        """Record ``TestOutcome`` and stop attributing calls to the test."""
        self.emit("TestOutcome", nodeid=nodeid, outcome=outcome, duration=duration, message=message)
        self.nodeid = None

    # ------------------------------------------------------------------ instruments

    def _resource_manager(self) -> Any:
        if self._rm is None:
            from pytest_litmus.visa import open_resource_manager

            if self.mock and self.config.simulation is None:
                raise StationConfigError(
                    self.config.path, "simulation", "a pyvisa-sim file for --mock / mock=True", has_got=False
                )
            self._rm = open_resource_manager(self.config.visa_library, simulation=self.config.simulation if self.mock else None)
        return self._rm

    def _simulation_file(self) -> str | None:
        """The simulation file instruments open on, if they are simulated."""
        if self.mock:
            return str(self.config.simulation)
        from pytest_litmus.visa import simulation_of

        return simulation_of(self.config.visa_library)

    def instrument(
        self, role: str, timeout: float | None | Literal["default"] = "default"
    ) -> InstrumentProxy | RemoteInstrument:
        """The role's instrument, locked and opened on first use; the same proxy afterwards.

        ``timeout`` (seconds) bounds the wait for a lock someone else holds: 0
        fails at once with :class:`ResourceInUse`, None waits forever; the
        default is the session's ``lock_timeout``. Mock sessions take no locks.
        A joined connection returns the holder's instrument (opened and locked
        there, with the holder's lock timeout), forwarding every call.
        """
        if self._remote is not None:
            self._require_started()
            return self._remote.instrument(self.config.role(role).role)
        with self._lock:
            proxy = self.instruments.get(role)
            if proxy is not None:
                return proxy
            recorder = self._require_started()
            assert isinstance(recorder, Recorder)  # a joined connection returned above
            cfg = self.config.role(role)
            wait = self.lock_timeout if timeout == "default" else timeout
            lease = None if self.mock else self._take_lock(cfg.role, cfg.resource, cfg.lock, wait)
            try:
                driver = open_driver(self._resource_manager(), self.config, cfg, simulation=self._simulation_file())
                if lease is not None:
                    lease.take_visa(getattr(driver, "resource", None), wait)
            except BaseException:
                if lease is not None:
                    self._drop_lock(role, lease)
                raise
            if lease is not None:
                self.emit("LockAcquired", role=role, resource=cfg.resource, mode=lease.mode, kind=lease.kind,
                          waited=lease.waited, nodeid=self.nodeid)
            guard = lease.check if lease is not None and lease.kind != "none" else None
            proxy = InstrumentProxy(driver, role=role, resource=cfg.resource, recorder=recorder, guard=guard)
            self.instruments[role] = proxy
            idn, idn_error = _identify(driver)
            self.emit(
                "InstrumentConnected",
                role=role,
                resource=cfg.resource,
                driver=f"{type(driver).__module__}:{type(driver).__qualname__}",
                idn=idn,
                idn_error=idn_error,
                lock=cfg.lock,
                mock=self.mock,
                nodeid=self.nodeid,
            )
            return proxy

    def srq(
        self,
        instrument: str | InstrumentProxy | RemoteInstrument,
        *,
        ese: int = 1,
        sre: int = 32,
        mechanism: str | None = None,
    ) -> SrqWaiter | RemoteSrqWaiter:
        """Arm service requests on a role (or its proxy) and return a waiter (see docs/srq.md).

        Sends ``*CLS``, ``*ESE ese``, ``*SRE sre`` under the instrument's lock;
        ``waiter.wait(timeout)`` returns the status byte or raises ``SrqTimeout``,
        and records an ``SrqWait`` event. A joined connection arms and waits in
        the holder, where the instrument is.
        """
        from pytest_litmus.srq import arm

        if self._remote is not None:
            from pytest_litmus.server import remote_role

            role = instrument if isinstance(instrument, str) else remote_role(instrument)
            return self._remote.srq(self.config.role(role).role, ese=ese, sre=sre, mechanism=mechanism)
        proxy = self.instrument(instrument) if isinstance(instrument, str) else instrument
        if not isinstance(proxy, InstrumentProxy):
            raise LitmusError(f"{proxy!r} is another process's instrument: arm it through the connection that joined its server")
        state = proxy_state(proxy)
        resource = getattr(state.driver, "resource", None)
        if resource is None:
            raise LitmusError(f"role {state.role!r}: its driver has no pyvisa 'resource' to arm service requests on")

        def emit(event_type: str, fields: dict[str, Any]) -> None:
            self.emit(event_type, **{**fields, "nodeid": self.nodeid})

        return arm(resource, ese=ese, sre=sre, bus_lock=state.lock, role=state.role, emit=emit, mechanism=mechanism)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ sharing

    def on_event(
        self,
        callback: Callable[[dict[str, Any]], object],
        *,
        event_type: str | Sequence[str] | None = None,
        role: str | None = None,
        since: Any = None,
    ) -> Callable[[], None]:
        """Replay matching past events to ``callback``, then push new ones; returns unsubscribe.

        ``since``: an int is a ``seq`` (events after it), a float or datetime a time.
        Reads the event file (see docs/sharing.md), so it never slows the writer.
        """
        from pytest_litmus.follow import follow

        return follow(self.event_log, callback, event_type=event_type, role=role, since=since)

    def start_instrument_server(self, roles: set[str] | list[str] | None = None, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve this connection's instruments to other processes; returns ``host:port``.

        Clients of the same user and data dir reach them with
        ``pytest_litmus.server.connect_remote(address)``; calls go through this
        connection's proxies and locks and are recorded here with the caller.
        """
        from pytest_litmus.server import serve

        self._require_started()
        if self._remote is not None:
            raise LitmusError(
                f"this connection joined the instrument server {self._remote.address}; only the holder serves its instruments"
            )
        if self._server is None:
            self._server = serve(self, roles, host=host, port=port)
        return str(self._server.address)

    @property
    def instrument_server(self) -> InstrumentServer | None:
        """The running :class:`~pytest_litmus.server.InstrumentServer` (its ``path``, ``environ``), or None."""
        return self._server

    @property
    def instrument_server_address(self) -> str | None:
        """``host:port`` of the running instrument server, if any."""
        return str(self._server.address) if self._server is not None else None

    def sync(self, name: str, timeout: float | None = None, *, parties: int | None = None) -> Any:
        """Block until ``parties`` processes of this session reached barrier ``name``.

        ``parties`` defaults to :attr:`sync_parties` (under pytest: the number of
        xdist workers, 1 without xdist). A party that dies, or ``timeout``
        seconds, raises ``SyncError`` in the others instead of hanging. Records
        ``SyncArrived`` and ``SyncReleased``.
        """
        from pytest_litmus.events import session_dir
        from pytest_litmus.sync import sync

        count = parties if parties is not None else self.sync_parties
        if count is None:
            raise ValueError(f"sync({name!r}) needs parties=N: how many processes of session {self.session_id} meet there")
        result = sync(
            session_dir(self.data_dir, self.session_id), name, count, timeout=timeout,
            on_arrived=lambda fields: self.emit("SyncArrived", **fields),
        )
        self.emit("SyncReleased", **result.fields())
        return result

    def _take_lock(self, role: str, resource: str, mode: LockMode, timeout: float | None) -> Lease:
        if self._owner is None:
            self._owner = LockOwner(self.data_dir, session=self.session_id, station=self.config.id)

        def contended(holder: Mapping[str, Any]) -> None:
            self.emit("LockContended", role=role, resource=resource, mode=mode, holder=dict(holder), nodeid=self.nodeid)

        lease = self._owner.acquire(
            resource, mode=mode, timeout=timeout, role=role, nodeid=self.nodeid or "", on_contended=contended
        )
        self.leases[role] = lease
        return lease

    def _drop_lock(self, role: str, lease: Lease) -> None:
        self.leases.pop(role, None)
        held = lease.held and lease.kind != "none"
        lease.release()
        if held:
            self.emit("LockReleased", role=role, resource=lease.resource, mode=lease.mode, kind=lease.kind, nodeid=self.nodeid)

    def release(self, role: str) -> None:
        """Close the role's instrument; its proxy refuses further calls.

        A joined connection holds nothing to release: the holder keeps the instrument.
        """
        self.config.role(role)
        if self._remote is not None:
            return
        with self._lock:
            if role in self.instruments:
                self._release(role)

    def _release(self, role: str) -> None:
        proxy = self.instruments.pop(role)
        state = proxy_state(proxy)
        with state.lock:
            state.guard = _released(self.config.id, role)
            try:
                lease = self.leases.get(role)
                if lease is not None:  # VISA unlock needs the session still open
                    self._drop_lock(role, lease)
            finally:
                try:
                    close = getattr(state.driver, "close", None)
                    if callable(close):
                        close()
                finally:
                    self.emit("InstrumentDisconnected", role=role, resource=state.resource, nodeid=self.nodeid)


def _released(station: str, role: str) -> Any:
    def guard() -> None:
        raise LitmusError(f"role {role!r} of station {station!r} was released; ask the connection for it again")

    return guard


def _identify(driver: Any) -> tuple[str | None, str | None]:
    idn = getattr(driver, "idn", None)
    if not callable(idn):
        return None, None
    try:
        return str(idn()), None
    except Exception as exc:  # an instrument without *IDN? still opens
        return None, f"{type(exc).__name__}: {exc}"
