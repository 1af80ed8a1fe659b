"""The :class:`Station` protocol: what fixtures, scripts and xdist workers use of a session.

Two classes implement it, each whole: the holder
(:class:`pytest_litmus.holder.StationConnection`: opens, locks and records) and
the joined session (:class:`pytest_litmus.sharing.joined.JoinedStation`: the
holder's instruments and log, reached through its instrument server).
``connect()`` returns either; code that uses a station should be typed against
this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytest_litmus.config import StationConfig
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.sync import SyncResult

__all__ = ["SESSION_OUTCOMES", "Instrument", "SessionOutcome", "SrqWaiterLike", "Station"]

SessionOutcome = Literal["passed", "failed", "errored", "terminated"]
SESSION_OUTCOMES: tuple[SessionOutcome, ...] = ("passed", "failed", "errored", "terminated")
#: ``timeout`` of :meth:`Station.instrument`: seconds, None (wait forever) or the session's default.
LockWait = float | None | Literal["default"]


@runtime_checkable
class Instrument(Protocol):
    """A role's instrument as a station hands it out: the driver's methods, recorded.

    ``lock_context()`` keeps the instrument this caller's for a block (a write
    and its read), PyVISA's name for the same idea.
    """

    def lock_context(self, timeout: float | None = None) -> AbstractContextManager[Any]: ...


class SrqWaiterLike(Protocol):
    """What :meth:`Station.srq` returns: ``wait`` for the status byte, ``close`` to disarm."""

    def wait(self, timeout: float | None = 10.0) -> int: ...

    def close(self) -> None: ...


class Station(Protocol):
    """One session on one station, as its users see it."""

    config: StationConfig
    data_dir: Path
    mock: bool
    hooks: LitmusPluginManager
    #: How many processes meet at :meth:`sync` by default (the plugin sets the xdist worker count).
    sync_parties: int | None

    @property
    def session_id(self) -> str: ...

    @property
    def event_log(self) -> Path: ...

    @property
    def started(self) -> bool: ...

    @property
    def nodeid(self) -> str | None: ...

    @nodeid.setter
    def nodeid(self, value: str | None) -> None: ...

    def start(self) -> Station: ...

    def stop(self, outcome: SessionOutcome = "passed") -> None: ...

    def __enter__(self) -> Station: ...

    def __exit__(self, *exc: object) -> None: ...

    def instrument(self, role: str, timeout: LockWait = "default") -> Any: ...

    def release(self, role: str) -> None: ...

    def srq(self, instrument: Any, *, ese: int = 1, sre: int = 32, mechanism: str | None = None) -> SrqWaiterLike: ...

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]: ...

    def measure(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement: ...

    def observe(self, key: str, value: Any, *, units: str | None = None) -> str: ...

    def configure(self, role: str, method: str, **parameters: Any) -> None: ...

    def events(self, event_type: str | Sequence[str] | None = None, role: str | None = None) -> list[dict[str, Any]]: ...

    def on_event(
        self,
        callback: Callable[[dict[str, Any]], object],
        *,
        event_type: str | Sequence[str] | None = None,
        role: str | None = None,
        since: Any = None,
    ) -> Callable[[], None]: ...

    def sync(self, name: str, timeout: float | None = None, *, parties: int | None = None) -> SyncResult: ...

    def test_started(self, nodeid: str) -> None: ...

    def test_finished(self, nodeid: str, outcome: str, duration: float, message: str | None = None) -> None: ...
