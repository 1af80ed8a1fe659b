"""A station joined to another process's session through its instrument server.

The holder keeps the instruments, their locks and the event log; a
:class:`JoinedStation` reaches the instruments through the server, and its
events (measurements, test outcomes) are numbered and written by the holder,
with this process as their ``caller``. This process's own ``litmus_event``
subscribers see the events it sent. pytest-xdist workers and
``connect(server=...)`` use it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pytest_litmus.config import StationConfig, load_station_file
from pytest_litmus.errors import LitmusError, StationConfigError
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.limits import reload_limits
from pytest_litmus.sharing.client import RemoteInstrument, RemoteSrqWaiter, RemoteStation, remote_role
from pytest_litmus.sharing.files import ServerInfo
from pytest_litmus.station import SESSION_OUTCOMES, LockWait, SessionOutcome, StationBase

__all__ = ["JoinedStation"]


class JoinedStation(StationBase):
    """The session of the instrument server ``server``, seen from this process.

    ``start()`` connects, ``stop()`` disconnects; the session and its locks stay
    the holder's. ``config`` defaults to the server's station file. Measurements
    are judged by the holder's limits table: ``config``'s if it is the same file
    with the same SHA-256, else the holder's file read again here (a file changed
    since the holder read it is a :class:`StationConfigError`).
    """

    def __init__(
        self, server: ServerInfo, *, hooks: LitmusPluginManager | None = None, config: StationConfig | None = None
    ) -> None:
        self.info = server
        self.config = _holders_limits(
            config if config is not None else load_station_file(Path(server.station_file)), server
        )
        self.data_dir = Path(server.data_dir)
        self.mock = server.mock
        self.hooks = hooks if hooks is not None else LitmusPluginManager()
        self.sync_parties: int | None = None
        self._remote: RemoteStation | None = None
        self._state: Literal["new", "started", "stopped"] = "new"
        self._outcome: SessionOutcome | None = None

    @property
    def session_id(self) -> str:
        return self.info.session

    @property
    def remote(self) -> RemoteStation | None:
        """The connection to the holder's server while started."""
        return self._remote

    @property
    def started(self) -> bool:
        return self._state == "started"

    def start(self) -> JoinedStation:
        """Connect to the server; returns self. The holder records this client's arrival."""
        if self._state != "new":
            raise LitmusError(f"this joined station was already {self._state}; join the session again for a new one")
        self._remote = RemoteStation(self.info)
        self._state = "started"
        return self

    def stop(self, outcome: SessionOutcome = "passed") -> None:
        """Disconnect (``outcome`` is checked but not recorded: the session is the holder's)."""
        if outcome not in SESSION_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(SESSION_OUTCOMES)}, got {outcome!r}")
        if self._state != "started":
            return
        assert self._remote is not None
        self._state, self._outcome = "stopped", outcome
        self._remote.close()

    @property
    def outcome(self) -> SessionOutcome | None:
        """The outcome this process left the session with; None while joined."""
        return self._outcome

    def __enter__(self) -> JoinedStation:
        return self.start()

    def _require_started(self) -> RemoteStation:
        if self._remote is None or self._state != "started":
            raise LitmusError(f"session {self.session_id} is not joined: call start() or use 'with connect(...)'")
        return self._remote

    @property
    def nodeid(self) -> str | None:
        """The test that calls and events of this process are attributed to, in the holder's log."""
        return self._remote.nodeid if self._remote is not None else None

    @nodeid.setter
    def nodeid(self, value: str | None) -> None:
        self._require_started().nodeid = value

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Record an event in the holder's log (it adds ``seq``, ``ts`` and ``caller``); returns it."""
        event = self._require_started().emit(event_type, fields)
        self.hooks.hook.litmus_event(event=event)
        return event

    def test_started(self, nodeid: str, attempt: int | None = None) -> None:
        """Record ``TestStarted`` and attribute what follows to ``nodeid`` (its ``attempt``).

        ``attempt`` None: 1, or the next one when this test's last outcome was ``rerun``.
        """
        from pytest_litmus.eventtypes import EventType

        self._start_attempt(nodeid, attempt)
        self.emit(EventType.TEST_STARTED, nodeid=nodeid, **self._test_fields())

    def instrument(self, role: str, timeout: LockWait = "default") -> RemoteInstrument:
        """The holder's instrument of ``role`` (opened and locked there, with the holder's lock timeout)."""
        return self._require_started().instrument(self.config.role(role).role)

    def release(self, role: str) -> None:
        """Nothing to release: the holder keeps the instrument (the role is still checked)."""
        self.config.role(role)

    def srq(
        self, instrument: str | RemoteInstrument, *, ese: int = 1, sre: int = 32, mechanism: str | None = None
    ) -> RemoteSrqWaiter:
        """Arm service requests on a role in the holder; the waiter waits there (see docs/srq.md)."""
        role = instrument if isinstance(instrument, str) else remote_role(instrument)
        return self._require_started().srq(self.config.role(role).role, ese=ese, sre=sre, mechanism=mechanism)

    def start_instrument_server(self, *args: Any, **kwargs: Any) -> str:
        """Refused: only the holder serves its instruments."""
        raise LitmusError(
            f"this station joined the instrument server {self.info.address}; only the holder serves its instruments"
        )


def _holders_limits(config: StationConfig, info: ServerInfo) -> StationConfig:
    """``config`` with the limits table of the holder that ``info`` describes."""
    own = config.limits
    if not info.limits_sha256:
        return config if own is None else replace(config, limits=None)
    if own is not None and own.sha256 == info.limits_sha256 and str(own.path) == info.limits_file:
        return config
    table = reload_limits(info.limits_file)
    if table.sha256 != info.limits_sha256:
        raise StationConfigError(
            info.limits_file,
            "(file)",
            f"the limits session {info.session} started with (SHA-256 {info.limits_sha256[:16]}...)",
            found=f"SHA-256 {table.sha256[:16]}...: the file changed since; start a new session",
        )
    return replace(config, limits=table)
