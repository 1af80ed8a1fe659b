"""The holder: the station session that opens, locks and records.

A :class:`StationConnection` owns one session: its event file, its instruments
(opened lazily, per role, locked, and wrapped in proxies), their locks, and
optionally an instrument server that lets other processes join it. The pytest
fixtures, ``connect()`` and the controller of an xdist run all use this class;
processes that join a holder's session use
:class:`~pytest_litmus.sharing.joined.JoinedStation` instead.

Why this module is over 500 lines: it is one class, whose parts (session start and stop,
instruments opened on demand, their locks, event counts, units) share its state and its lock;
what is not the holder's own lives below it (:mod:`~pytest_litmus.station`, :mod:`~pytest_litmus.locks`,
:mod:`~pytest_litmus.events`, :mod:`~pytest_litmus.sharing`).
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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_litmus.config import LockMode, StationConfig, simulation_of
from pytest_litmus.dut import MAIN_SLOT, Dut
from pytest_litmus.errors import EventsNotWritten, LitmusError, StationConfigError, UnitIndexError
from pytest_litmus.events import EventFile, Recorder
from pytest_litmus.eventtypes import EventType
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.instruments import InstrumentProxy, open_driver, proxy_state
from pytest_litmus.processes import current_user
from pytest_litmus.settings import resolve_data_dir
from pytest_litmus.station import (
    SESSION_OUTCOMES,
    LockWait,
    SessionOutcome,
    StationBase,
    measurement_body,
    measurement_fields,
    outcome_body,
    outcome_fields,
    started_body,
)
from pytest_litmus.units import next_attempt, unit_index

if TYPE_CHECKING:
    from pytest_litmus.eventfile import WriteFault
    from pytest_litmus.locks import Lease, LockOwner
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.sharing.files import ServerInfo
    from pytest_litmus.sharing.joined import JoinedStation
    from pytest_litmus.sharing.server import InstrumentServer
    from pytest_litmus.srq import SrqWaiter

__all__ = ["StationConnection"]

#: Event types counted for ``SessionEnded``, and the prefix of their counter.
_COUNTED: dict[str, str] = {EventType.TEST_OUTCOME: "", EventType.MEASUREMENT: "measurements_"}


#: distribution -> the module whose ``__version__`` is that distribution's version.
_VERSIONED = {
    "pytest-litmus": "pytest_litmus",
    "pyvisa": "pyvisa",
    "pyvisa-py": "pyvisa_py",
    "pyvisa-sim": "pyvisa_sim",
    "pytest": "pytest",
}


def _versions() -> dict[str, str | None]:
    """Versions for ``SessionStarted``: an imported module's ``__version__`` (free), else the metadata (~1 ms)."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist, module in _VERSIONED.items():
        value = getattr(sys.modules.get(module), "__version__", None)
        found[dist] = value if isinstance(value, str) else _metadata_version(dist)
    return found


def _metadata_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class StationConnection(StationBase):
    """One session on one station, held by this process: event log, instruments by role, locks.

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
        dut: Dut | None = None,
        locks: str = "host",
    ) -> None:
        self.config = station_config
        #: Where instrument locks are held: ``host`` (lock files in the data dir) or a ``postgresql://`` URL.
        self.locks = locks
        self.dut = dut
        #: The unit attempt of :attr:`dut` (set by ``start()``), and of each unit begun since.
        self.unit_attempts: dict[str, int] = {}
        self.data_dir = Path(data_dir) if data_dir is not None else resolve_data_dir()
        self.mock = mock
        self._session_id = str(uuid.uuid4())
        #: How many processes meet at :meth:`sync` when it is not told (the plugin sets the xdist worker count).
        self.sync_parties: int | None = None
        self.hooks = hooks if hooks is not None else LitmusPluginManager()
        self.lock_timeout = lock_timeout
        #: Called with (role, resource, holder) when a lock is held by another and this session waits for it.
        self.on_lock_wait: Callable[[str, str, Mapping[str, Any], float | None], object] | None = None
        self.instruments: dict[str, InstrumentProxy] = {}
        self.leases: dict[str, Lease] = {}
        self._owner: LockOwner | None = None
        self._server: InstrumentServer | None = None
        self.counts: Counter[str] = Counter()
        #: Measurement outcomes of each running test attempt, by (nodeid, dut): a rerun takes them back.
        self._attempt_counts: dict[tuple[Any, Any], dict[Any, int]] = {}
        self._argv = list(argv) if argv is not None else list(sys.argv)
        self._recorder: Recorder | None = None
        self._rm: Any = None
        self._lock = threading.RLock()
        self._state: Literal["new", "started", "stopped"] = "new"
        self._outcome: SessionOutcome | None = None

    @staticmethod
    def join(
        server: ServerInfo, *, hooks: LitmusPluginManager | None = None, config: StationConfig | None = None
    ) -> JoinedStation:
        """A station joined to the session that the instrument server ``server`` belongs to.

        See :class:`~pytest_litmus.sharing.joined.JoinedStation`; kept here
        because ``StationConnection.join`` is where scripts found it first.
        """
        from pytest_litmus.sharing.joined import JoinedStation

        return JoinedStation(server, hooks=hooks, config=config)

    @property
    def session_id(self) -> str:
        return self._session_id

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self._state == "started"

    def start(self) -> StationConnection:
        """Number the unit (if any), create the event file and record ``SessionStarted``; returns self.

        Raises :class:`~pytest_litmus.errors.UnitIndexError` when the unit index
        cannot be written, and :class:`~pytest_litmus.errors.EventsNotWritten`
        when the event file cannot be created; the session is then not started.
        """
        with self._lock:
            if self._state != "new":
                raise LitmusError(
                    f"session {self.session_id} was already {self._state}; one StationConnection per session"
                )
            dut = self.dut
            unit_attempt = None
            if dut is not None:
                unit_attempt = self._unit_attempt(dut, MAIN_SLOT)
                self.dut = dut = replace(dut, attempt=unit_attempt)
            self._recorder = Recorder(self.session_id, self._event_file(), self.hooks)
            self._state = "started"
            atexit.register(self._at_exit)
        self.emit(
            EventType.SESSION_STARTED,
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
            dut=None if dut is None else dut.serial,
            dut_part=None if dut is None else dut.part,
            unit_attempt=unit_attempt,
            limits_file=str(self.config.limits.path) if self.config.limits else None,
            limits_sha256=self.config.limits.sha256 if self.config.limits else None,
        )
        if dut is not None:
            self.emit(EventType.UNIT_STARTED, **dut.fields(), unit_attempt=unit_attempt, slot=MAIN_SLOT)
        return self

    def begin_unit(self, dut: Dut, slot: str) -> int:
        """Record ``UnitStarted`` for a unit tested in ``slot`` (an xdist worker); returns its unit attempt.

        A unit already begun in this session keeps its number (several slots may test one unit).
        """
        self._require_started()
        known = dut.serial in self.unit_attempts
        attempt = self._unit_attempt(dut, slot)
        if not known:
            self.emit(EventType.UNIT_STARTED, **dut.fields(), unit_attempt=attempt, slot=slot)
        return attempt

    def _unit_attempt(self, dut: Dut, slot: str) -> int:
        """The unit attempt of ``dut`` in this session: taken from the data dir's unit index once."""
        known = self.unit_attempts.get(dut.serial)
        if known is not None:
            return known
        from filelock import Timeout

        try:
            attempt = next_attempt(self.data_dir, dut.serial, self.session_id, station=self.config.id, slot=slot)
        except (OSError, Timeout) as exc:
            raise UnitIndexError(unit_index(self.data_dir, dut.serial), dut.serial, str(exc)) from None
        self.unit_attempts[dut.serial] = attempt
        return attempt

    def stop(self, outcome: SessionOutcome = "passed") -> None:
        """Stop serving, release every instrument (reverse order), record ``SessionEnded``, close the log.

        Raises :class:`~pytest_litmus.errors.EventsNotWritten` (after closing everything)
        when events could not be written; the session then ends ``errored``.
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
                    self._owner.close()
                if self._rm is not None:
                    self._rm.close()
                    self._rm = None
            finally:
                recorder = self._recorder
                assert recorder is not None
                ended: dict[str, Any] = {}
                for taken in self._attempt_counts.values():  # measurements of no test that ended
                    self._add_measurements(taken)
                self._attempt_counts.clear()
                recorder.flush()
                fault = recorder.fault()
                if fault is not None:  # a session missing events did not pass
                    outcome, ended = "errored", {"events_lost": fault.lost, "events_waiting": fault.pending}
                self._outcome = outcome
                self.emit(EventType.SESSION_ENDED, outcome=outcome, counts=dict(self.counts), **ended)
                recorder.close()
                self._state = "stopped"
                atexit.unregister(self._at_exit)
        fault = recorder.fault()
        if fault is not None:
            raise fault.error(self.session_id)

    @property
    def write_fault(self) -> WriteFault | None:
        """Events of this session not on its event file (waiting in memory, or lost), and why; None if none."""
        return self._recorder.fault() if self._recorder is not None else None

    def flush_events(self) -> bool:
        """Try once to write events that a write fault left waiting; True if none wait."""
        return self._recorder.flush() if self._recorder is not None else True

    def unrecorded(self, nodeid: str | None) -> list[str]:
        """The types of ``nodeid``'s ``Measurement``/``TestOutcome`` events that are not on disk."""
        return self._recorder.unrecorded(nodeid) if self._recorder is not None else []

    def _event_file(self) -> EventFile:
        """The session's event file, created; a data dir that refuses it is a :class:`StationConfigError`."""
        try:
            return EventFile(self.event_log)
        except OSError as exc:  # EventsNotWritten included: at creation it is the data dir's fault
            why = getattr(exc, "reason", None) or exc.strerror or exc
            raise StationConfigError(
                self.data_dir,
                "data_dir",
                "a directory this user can create sessions in",
                found=f"{why}: {exc.filename or self.event_log}",
            ) from None

    @property
    def outcome(self) -> SessionOutcome | None:
        """The outcome the session ended with; None while it runs."""
        return self._outcome

    def _at_exit(self) -> None:
        try:
            self.stop("terminated")
        except EventsNotWritten as exc:
            print(f"litmus: {exc}", file=sys.stderr)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """As :meth:`StationBase.__exit__`; lost events raise ``EventsNotWritten``, or are noted on ``exc``."""
        try:
            super().__exit__(exc_type, exc, tb)
        except EventsNotWritten as lost:
            if exc is None:
                raise
            exc.add_note(f"litmus: {lost}")

    def __enter__(self) -> StationConnection:
        return self.start()

    # ------------------------------------------------------------------ events

    def _require_started(self) -> Recorder:
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
        prefix = _COUNTED.get(event_type)
        if prefix is not None:
            self._count(prefix, fields.get("outcome"), fields.get("nodeid"), fields.get("dut"))
        return event

    def _record_measurement(self, measurement: Measurement, dut: str | None, attempt: int | None) -> None:
        """The ``Measurement`` event's line built directly (no event dict) while the file is its only reader."""
        body = measurement_body(measurement, dut, attempt)
        self._require_started().emit_encoded(EventType.MEASUREMENT, body, measurement_fields, measurement, dut, attempt)
        self._count("measurements_", measurement.outcome, measurement.nodeid, dut)

    def _count(self, prefix: str, outcome: Any, nodeid: Any, dut: Any) -> None:
        """Count a test outcome (``prefix`` "") or a measurement (``measurements_``) for ``SessionEnded``.

        A measurement is counted with its test's attempt, and joins the session's counts
        with the test's outcome (or, if none comes, when the session stops): a
        superseded attempt's measurements count as ``measurements_superseded``.
        """
        with self._lock:
            key = (nodeid, dut)
            if prefix:
                running = self._attempt_counts.get(key)
                if running is None:
                    self._attempt_counts[key] = {outcome: 1}
                else:
                    running[outcome] = running.get(outcome, 0) + 1
                return
            self.counts[outcome] += 1
            taken = self._attempt_counts.pop(key, None)
            if taken:
                self._add_measurements(taken, superseded=outcome == "rerun")

    def _add_measurements(self, taken: dict[Any, int], *, superseded: bool = False) -> None:
        if superseded:
            self.counts["measurements_superseded"] += sum(taken.values())
        else:
            for outcome, n in taken.items():
                self.counts[f"measurements_{outcome}"] += n

    def test_started(self, nodeid: str, attempt: int | None = None) -> None:
        """Record ``TestStarted`` and attribute what follows to ``nodeid`` (its ``attempt``).

        ``attempt`` None: 1, or the next one when this test's last outcome was ``rerun``.
        """
        self._start_attempt(nodeid, attempt)
        for lease in list(self.leases.values()):
            if lease.held and lease.kind != "none":
                lease.annotate(nodeid=nodeid)  # `litmus locks` shows which test holds it
        dut, attempt = self._test_unit()
        body = started_body(nodeid, dut, attempt)
        self._require_started().emit_encoded(
            EventType.TEST_STARTED, body, lambda: {"nodeid": nodeid, "dut": dut, "attempt": attempt}
        )

    def _record_outcome(self, nodeid: str, outcome: str, duration: float, message: str | None) -> None:
        """The ``TestOutcome`` line built directly while the file is its only reader, and counted."""
        dut, attempt = self._test_unit()
        body = outcome_body(nodeid, outcome, duration, message, dut, attempt)
        self._require_started().emit_encoded(
            EventType.TEST_OUTCOME, body, outcome_fields, nodeid, outcome, duration, message, dut, attempt
        )
        self._count("", outcome, nodeid, dut)

    # ------------------------------------------------------------------ instruments

    def _resource_manager(self) -> Any:
        if self._rm is None:
            from pytest_litmus.visa import open_resource_manager

            if self.mock and self.config.simulation is None:
                raise StationConfigError(
                    self.config.path, "simulation", "a pyvisa-sim file for --mock / mock=True", has_got=False
                )
            self._rm = open_resource_manager(
                self.config.visa_library, simulation=self.config.simulation if self.mock else None
            )
        return self._rm

    def _simulation_file(self) -> str | None:
        """The simulation file instruments open on, if they are simulated."""
        if self.mock:
            return str(self.config.simulation)
        return simulation_of(self.config.visa_library)

    def instrument(self, role: str, timeout: LockWait = "default") -> InstrumentProxy:
        """The role's instrument, locked and opened on first use; the same proxy afterwards.

        ``timeout`` (seconds) bounds the wait for a lock someone else holds: 0
        fails at once with :class:`ResourceInUse`, None waits forever; the
        default is the session's ``lock_timeout``. Mock sessions take no locks.
        """
        with self._lock:
            proxy = self.instruments.get(role)
            if proxy is not None:
                return proxy
            recorder = self._require_started()
            cfg = self.config.role(role)
            wait = self.lock_timeout if timeout == "default" else timeout
            lease = None if self.mock else self._take_lock(cfg.role, cfg.resource, cfg.lock, wait)
            session = None
            try:
                rm = self._resource_manager()
                driver, session = open_driver(rm, self.config, cfg, simulation=self._simulation_file())
                if lease is not None:  # on the session opened here: a driver may keep it under any name
                    lease.take_visa(session, wait)
            except BaseException:
                if lease is not None:
                    self._drop_lock(role, lease)
                if session is not None:
                    session.close()
                raise
            if lease is not None:
                self.emit(
                    EventType.LOCK_ACQUIRED,
                    role=role,
                    resource=cfg.resource,
                    mode=lease.mode,
                    kind=lease.kind,
                    waited=lease.waited,
                    nodeid=self.nodeid,
                )
            guard = lease.check if lease is not None and lease.kind != "none" else None
            proxy = InstrumentProxy(
                driver, role=role, resource=cfg.resource, recorder=recorder, guard=guard, session=session
            )
            self.instruments[role] = proxy
            idn, idn_error = _identify(driver)
            self.emit(
                EventType.INSTRUMENT_CONNECTED,
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
        self, instrument: str | InstrumentProxy, *, ese: int = 1, sre: int = 32, mechanism: str | None = None
    ) -> SrqWaiter:
        """Arm service requests on a role (or its proxy) and return a waiter (see docs/srq.md).

        Sends ``*CLS``, ``*ESE ese``, ``*SRE sre`` under the instrument's lock;
        ``waiter.wait(timeout)`` returns the status byte or raises ``SrqTimeout``,
        and records an ``SrqWait`` event.
        """
        from pytest_litmus.srq import arm

        proxy = self.instrument(instrument) if isinstance(instrument, str) else instrument
        if not isinstance(proxy, InstrumentProxy):
            raise LitmusError(
                f"{proxy!r} is another process's instrument: arm it through the station that joined its server"
            )
        state = proxy_state(proxy)
        resource = state.session
        if resource is None:
            raise LitmusError(f"role {state.role!r}: no pyvisa resource to arm service requests on")

        def emit(event_type: str, fields: dict[str, Any]) -> None:
            self.emit(event_type, **{**fields, "nodeid": self.nodeid})

        return arm(resource, ese=ese, sre=sre, bus_lock=state.lock, role=state.role, emit=emit, mechanism=mechanism)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ serving

    def start_instrument_server(
        self, roles: set[str] | list[str] | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> str:
        """Serve this session's instruments to other processes; returns ``host:port``.

        Clients of the same user and data dir reach them with
        ``pytest_litmus.sharing.connect_remote(address)`` or
        ``connect(server=address)``; calls go through this session's proxies and
        locks and are recorded here with the caller.
        """
        from pytest_litmus.sharing.server import serve

        self._require_started()
        if self._server is None:
            self._server = serve(self, roles, host=host, port=port)
        return str(self._server.address)

    @property
    def instrument_server(self) -> InstrumentServer | None:
        """The running :class:`~pytest_litmus.sharing.server.InstrumentServer` (its ``path``, ``environ``), or None."""
        return self._server

    @property
    def instrument_server_address(self) -> str | None:
        """``host:port`` of the running instrument server, if any."""
        return str(self._server.address) if self._server is not None else None

    # ------------------------------------------------------------------ locks

    def _take_lock(self, role: str, resource: str, mode: LockMode, timeout: float | None) -> Lease:
        if self._owner is None:
            from pytest_litmus.locks import LockOwner  # not imported by --mock runs, which lock nothing

            self._owner = LockOwner(self.data_dir, session=self.session_id, station=self.config.id)
            if self.locks != "host":  # a postgresql:// URL (the settings checked it)
                from pytest_litmus.locks import PostgresBackend

                self._owner.backend = PostgresBackend(self.locks)

        def contended(holder: Mapping[str, Any]) -> None:
            if self.on_lock_wait is not None and timeout != 0:
                self.on_lock_wait(role, resource, holder, timeout)
            self.emit(
                EventType.LOCK_CONTENDED,
                role=role,
                resource=resource,
                mode=mode,
                holder=dict(holder),
                nodeid=self.nodeid,
            )

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
            self.emit(
                EventType.LOCK_RELEASED,
                role=role,
                resource=lease.resource,
                mode=lease.mode,
                kind=lease.kind,
                nodeid=self.nodeid,
            )

    def release(self, role: str) -> None:
        """Close the role's instrument and release its locks; its proxy refuses further calls."""
        self.config.role(role)
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
                    if state.session is not None:  # whatever the driver did: pyvisa's close is idempotent
                        state.session.close()
                finally:
                    self.emit(EventType.INSTRUMENT_DISCONNECTED, role=role, resource=state.resource, nodeid=self.nodeid)


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
