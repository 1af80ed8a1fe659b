"""The lock backend interface: :class:`LockBackend` does the bookkeeping, backends do the locking.

As in filelock's ``_api.py``: the base class validates arguments, builds the
holder record, waits with back-off under PyVISA's timeout semantics (0 fails at
once, a positive timeout waits that long, None waits forever), reports
contention once and raises :class:`~pytest_litmus.errors.ResourceInUse`
naming the holder. A backend implements one non-blocking attempt
(:meth:`LockBackend._try_acquire`) or a whole wait (:meth:`LockBackend._acquire`,
for backends that can block natively, such as PostgreSQL's ``lock_timeout``),
plus :meth:`~LockBackend._release`, :meth:`~LockBackend.holders`,
:meth:`~LockBackend.list` and :meth:`~LockBackend.force_release`.

A :class:`Hold` is one backend's hold on one resource; :meth:`Hold.check` raises
:class:`~pytest_litmus.errors.LockLost` when the lock was taken away (forced
release, a dropped database connection).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, NamedTuple, Self

from pytest_litmus.backoff import Backoff
from pytest_litmus.config import LOCK_MODES, LockMode
from pytest_litmus.errors import LitmusError, ResourceInUse
from pytest_litmus.processes import this_process

__all__ = [
    "ACQUIRE_BACKOFF",
    "Hold",
    "LockBackend",
    "LockKind",
    "LockMode",
    "LockState",
    "LockUnsupported",
    "OnContended",
    "ReleaseResult",
    "State",
    "check_timeout",
    "holder_summary",
]

#: ``host`` a host lock only; ``postgres`` a PostgreSQL lock only; ``visa`` also an instrument-side VISA lock;
#: ``none`` no lock.
LockKind = Literal["host", "postgres", "visa", "none"]
#: What ``litmus locks`` says of a lock.
State = Literal["held", "free", "stale"]
#: ``on_contended(holder)``: called once when an acquire finds the lock held and is going to wait.
OnContended = Callable[[Mapping[str, Any]], None]

#: A waiting acquire: 1 ms doubling to 25 ms with jitter, so a freed lock is taken within ~25 ms.
ACQUIRE_BACKOFF = Backoff(first=0.001, factor=2.0, cap=0.025, jitter=0.5)


class LockUnsupported(LitmusError, NotImplementedError):
    """The backend cannot do this (a VISA lock cannot be listed or broken from outside)."""


def check_timeout(timeout: float | None) -> float | None:
    """PyVISA's timeout semantics in seconds: None (or inf) waits forever; else a number >= 0."""
    if timeout is None or timeout == float("inf"):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"lock timeout must be seconds >= 0 or None (wait forever), got {timeout!r}")
    return float(timeout)


def check_mode(mode: str) -> LockMode:
    if mode not in LOCK_MODES:
        raise ValueError(f"lock mode must be one of {', '.join(LOCK_MODES)}, got {mode!r}")
    return mode


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def seconds_since(iso: Any) -> float | None:
    try:
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(str(iso))).total_seconds())
    except ValueError:
        return None


def holder_summary(holders: list[dict[str, Any]]) -> dict[str, Any]:
    """One holder mapping for errors: the oldest holder, plus ``holders`` listing all when shared."""
    if not holders:
        return {}
    first = dict(holders[0])
    if len(holders) > 1:
        first["holders"] = holders
    return first


class LockState(NamedTuple):
    """What ``litmus locks`` shows for one lock."""

    resource: str
    key: str
    state: State
    holders: list[dict[str, Any]]
    held_for: float | None
    path: str

    @property
    def mode(self) -> str | None:
        return str(self.holders[0].get("mode")) if self.holders else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "key": self.key,
            "state": self.state,
            "mode": self.mode,
            "held_for": self.held_for,
            "holders": self.holders,
            "path": self.path,
        }


class ReleaseResult(NamedTuple):
    """What a forced release did: ``cleaned`` (nobody held it) or ``broken`` (taken from a live holder)."""

    resource: str
    action: Literal["cleaned", "broken"]
    holders: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "holders": self.holders}


class Hold:
    """One backend's hold on one resource; backends subclass it to keep their handle."""

    def __init__(self, backend: LockBackend, resource: str, mode: LockMode, record: dict[str, Any]) -> None:
        self.backend = backend
        self.resource = resource
        self.mode: LockMode = mode
        #: The holder record (who, since when, which test); what :meth:`LockBackend.holders` shows.
        self.record = record
        #: Seconds the acquire waited.
        self.waited = 0.0
        self.released = False

    @property
    def kind(self) -> LockKind:
        return self.backend.kind

    @property
    def held(self) -> bool:
        return not self.released

    def check(self) -> None:
        """Raise :class:`~pytest_litmus.errors.LockLost` if the lock was taken away; cheap (per call)."""

    def annotate(self, **fields: Any) -> None:
        """Update holder-record fields (the running test's ``nodeid``) where the backend shows them."""
        self.record.update(fields)
        if not self.released:
            self.backend._annotate(self)

    def release(self) -> None:
        """Give the lock back; no-op once released."""
        self.backend.release(self)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<{type(self).__name__} {self.resource} {self.mode} {state}>"


class LockBackend(abc.ABC):
    """Per-resource locks of one kind. Subclasses implement the abstract methods."""

    #: The kind a hold of this backend reports.
    kind: ClassVar[LockKind] = "host"
    #: Whether :meth:`list` and :meth:`force_release` work (a VISA lock is invisible from outside).
    can_list: ClassVar[bool] = True
    #: The back-off of the default waiting loop.
    backoff: ClassVar[Backoff] = ACQUIRE_BACKOFF

    def acquire(
        self,
        resource: str,
        mode: LockMode = "exclusive",
        timeout: float | None = 0.0,
        holder: Mapping[str, Any] | None = None,
        on_contended: OnContended | None = None,
    ) -> Hold:
        """Lock ``resource`` in ``mode`` (``exclusive`` or ``shared``) and return the hold.

        ``holder``: fields for the holder record (session, station, role,
        nodeid), beside this process's identity. Raises
        :class:`~pytest_litmus.errors.ResourceInUse` (with the holder and
        ``waited``) when ``timeout`` passes first.
        """
        mode = check_mode(mode)
        if mode == "none":
            raise ValueError("mode 'none' takes no lock: do not ask a backend for it")
        limit = check_timeout(timeout)
        record = {**this_process(), **(holder or {}), "resource": resource, "mode": mode, "kind": self.kind}
        hold, waited = self._acquire(resource, mode, limit, record, on_contended)
        if hold is None:
            raise ResourceInUse(resource, holder_summary(self.holders(resource)), waited=waited)
        hold.waited = waited
        return hold

    def _acquire(
        self,
        resource: str,
        mode: LockMode,
        timeout: float | None,
        record: dict[str, Any],
        on_contended: OnContended | None,
    ) -> tuple[Hold | None, float]:
        """Wait for the lock: (the hold or None on timeout, seconds waited). Default: poll :meth:`_try_acquire`."""
        poll = self.backoff.start(timeout)
        while True:
            record["since"] = now_iso()
            hold = self._try_acquire(resource, mode, record)
            if hold is not None or poll.expired:
                return hold, poll.elapsed
            if on_contended is not None:  # about to wait: say once who holds it
                on_contended(holder_summary(self.holders(resource)))
                on_contended = None
            poll.sleep()

    def _try_acquire(self, resource: str, mode: LockMode, record: dict[str, Any]) -> Hold | None:
        """One attempt that never waits: the hold, or None if someone else holds the lock."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _try_acquire nor _acquire")

    def close(self) -> None:
        """Let go of what the backend keeps open between acquires (a server connection); default: nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def release(self, hold: Hold) -> None:
        """Release ``hold``; no-op if it already was."""
        if hold.released:
            return
        hold.released = True
        self._release(hold)

    @abc.abstractmethod
    def _release(self, hold: Hold) -> None:
        """Give up the lock ``hold`` has (called once per hold)."""

    def _annotate(self, hold: Hold) -> None:
        """Publish ``hold.record`` again after :meth:`Hold.annotate` (default: nothing to publish)."""

    @abc.abstractmethod
    def holders(self, resource: str) -> list[dict[str, Any]]:
        """Records of the live holders of ``resource``, oldest first (empty when free)."""

    @abc.abstractmethod
    def list(self) -> list[LockState]:
        """Every lock this backend knows, sorted by resource."""

    @abc.abstractmethod
    def force_release(self, resource: str, *, only_stale: bool = False) -> ReleaseResult:
        """Free the lock on ``resource`` whoever holds it; the holder's next :meth:`Hold.check` raises.

        ``only_stale``: refuse with :class:`~pytest_litmus.errors.ResourceInUse`
        when a live holder has it (only clean up after dead holders).
        :class:`~pytest_litmus.errors.NoSuchLock` if there is no such lock.
        """
