"""One session's locks: :class:`LockOwner` hands out re-entrant :class:`Lease` objects per resource.

A lease composes two backends: the host backend (``flock`` files, or any other
:class:`~pytest_litmus.locks.LockBackend` given to the owner) taken before the
instrument is opened, and, once it is open, the instrument-side VISA lock
(:meth:`Lease.take_visa`) where the VISA library supports one. Release goes in
reverse: VISA first, then the host lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pytest_litmus.errors import LockModeConflict
from pytest_litmus.locks._api import (
    Hold,
    LockBackend,
    LockKind,
    LockMode,
    LockUnsupported,
    OnContended,
    check_mode,
    check_timeout,
)
from pytest_litmus.locks._records import lock_key
from pytest_litmus.locks._visa import VisaBackend

__all__ = ["Lease", "LockOwner"]


class Lease:
    """One owner's hold on one resource: re-entrant, released by :meth:`release` or its owner.

    ``kind`` is the backend's (``host``: a host lock only; ``postgres``: a
    PostgreSQL lock only), ``visa`` (and the instrument's VISA lock) or ``none``
    (mode ``none``: nothing locked).
    """

    def __init__(
        self,
        owner: LockOwner | None,
        resource: str,
        mode: LockMode,
        *,
        hold: Hold | None = None,
        role: str = "",
    ) -> None:
        self.owner = owner
        self.resource = resource
        self.mode: LockMode = mode
        self.role = role
        self.hold = hold
        self.waited = hold.waited if hold is not None else 0.0
        self.record: dict[str, Any] = hold.record if hold is not None else {}
        self.kind: LockKind = hold.kind if hold is not None else "none"
        self.key = lock_key(resource)
        self.depth = 1
        self._visa: Hold | None = None

    @property
    def held(self) -> bool:
        return self.depth > 0

    @property
    def lock_path(self) -> Path:
        """The host lock file (empty for a lease that locks nothing or a backend without files)."""
        return Path(getattr(self.hold, "lock_path", ""))

    def check(self) -> None:
        """Raise :class:`~pytest_litmus.errors.LockLost` if the lock was taken from under this lease.

        A released lease (or one of mode ``none``) has nothing to lose: no-op.
        """
        if self.hold is not None:
            self.hold.check()

    def annotate(self, **fields: Any) -> None:
        """Update holder-record fields (``nodeid`` of the running test, ``kind``) and republish the record."""
        if self.hold is not None:
            self.hold.annotate(**fields)
        else:
            self.record.update(fields)

    def take_visa(self, resource: Any, timeout: float | None = 0.0) -> LockKind:
        """Also take the instrument-side VISA lock on the opened pyvisa ``resource``; the kind now held.

        It is unlocked before the host lock when this lease is released. If the
        VISA lock is refused (:class:`~pytest_litmus.errors.ResourceInUse`), this
        lease is released (one level) before the error propagates.
        """
        if self.hold is None or self.hold.released or self._visa is not None:
            return self.kind
        name = str(getattr(resource, "resource_name", self.resource))
        try:
            self._visa = VisaBackend(resource).acquire(name, self.mode, timeout, {"role": self.role})
            kind: LockKind = "visa"
        except LockUnsupported:
            kind = self.hold.kind
        except BaseException:
            self.release()
            raise
        self.kind = kind
        self.annotate(kind=kind)
        return kind

    def release(self) -> None:
        """Release one level; the lock itself goes when the last level does. No-op once released."""
        if self.owner is not None:
            self.owner._release_lease(self)
        else:
            self._drop(all_levels=True)

    def _drop(self, *, all_levels: bool) -> bool:
        """Drop one level (or all); True when the lock itself was released."""
        if self.depth <= 0:
            return False
        self.depth = 0 if all_levels else self.depth - 1
        if self.depth > 0:
            return False
        visa, self._visa = self._visa, None
        try:
            if visa is not None:
                visa.release()
        finally:
            if self.hold is not None:
                self.hold.release()
        return True

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lease {self.resource} {self.mode} {self.kind} depth={self.depth}>"


class LockOwner:
    """Holds one session's locks: re-entrant per resource, released in reverse acquisition order.

    ``data_dir`` is the litmus data dir; ``session`` and ``station`` go into every
    holder record. ``backend`` takes the locks: by default the host backend,
    ``flock`` files under ``<data_dir>/locks/``; any :class:`LockBackend` (a
    network one, or an in-memory one in tests) works the same.
    """

    __slots__ = ("_leases", "_mutex", "backend", "data_dir", "session", "station")

    def __init__(
        self, data_dir: str | os.PathLike[str], session: str = "", station: str = "", backend: LockBackend | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.session = session
        self.station = station
        if backend is None:
            from pytest_litmus.locks._host import HostBackend

            backend = HostBackend(os.fspath(self.data_dir))
        self.backend: LockBackend = backend
        self._leases: dict[str, Lease] = {}
        self._mutex = threading.RLock()

    @property
    def leases(self) -> list[Lease]:
        """Held leases in acquisition order."""
        with self._mutex:
            return list(self._leases.values())

    def lease(self, resource: str) -> Lease | None:
        """The lease this owner holds on ``resource``, if any."""
        return self._leases.get(lock_key(resource))

    def acquire(
        self,
        resource: str,
        *,
        mode: LockMode = "exclusive",
        timeout: float | None = 0.0,
        role: str = "",
        nodeid: str = "",
        on_contended: OnContended | None = None,
    ) -> Lease:
        """Lock ``resource`` (a VISA address) for this owner and return the lease.

        ``timeout`` in seconds as PyVISA's: 0 fails at once, a positive number
        waits that long, None waits forever. Raises
        :class:`~pytest_litmus.errors.ResourceInUse` with the current holder
        (``holder["holders"]`` lists all when several share it) and ``waited``.
        ``on_contended(holder)`` is called once if the first attempt finds the
        lock held and it is going to wait (for a ``LockContended`` event). Mode
        ``none`` returns a lease that locks nothing. Asking again for a resource
        this owner holds returns the same lease one level deeper
        (:class:`~pytest_litmus.errors.LockModeConflict` for exclusive over shared).
        """
        mode = check_mode(mode)
        limit = check_timeout(timeout)
        if mode == "none":
            return Lease(None, resource, mode, role=role)
        key = lock_key(resource)
        again = self._reenter(key, resource, mode)
        if again is not None:
            return again
        holder = {"session": self.session, "station": self.station, "role": role, "nodeid": nodeid}
        hold = self.backend.acquire(resource, mode, limit, holder, on_contended)
        lease = Lease(self, resource, mode, hold=hold, role=role)
        with self._mutex:
            again = self._reenter(key, resource, mode)  # another thread of this owner got there first
            if again is not None:
                lease._drop(all_levels=True)
                return again
            self._leases[key] = lease
        return lease

    def _reenter(self, key: str, resource: str, mode: LockMode) -> Lease | None:
        with self._mutex:
            lease = self._leases.get(key)
            if lease is None:
                return None
            if lease.mode == "shared" and mode == "exclusive":
                raise LockModeConflict(resource, lease.mode, mode)
            lease.depth += 1
            return lease

    def release(self, resource: str) -> None:
        """Release one level of this owner's lease on ``resource`` (no-op if not held)."""
        lease = self.lease(resource)
        if lease is not None:
            self._release_lease(lease)

    def _release_lease(self, lease: Lease) -> None:
        with self._mutex:
            if self._leases.get(lease.key) is lease and lease._drop(all_levels=False):
                del self._leases[lease.key]

    def release_all(self) -> None:
        """Release every lease, all levels, newest first (on stop, session end, KeyboardInterrupt)."""
        with self._mutex:
            leases = list(self._leases.values())
            self._leases.clear()
        errors: list[BaseException] = []
        for lease in reversed(leases):
            try:
                lease._drop(all_levels=True)
            except Exception as exc:  # release the others; report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """:meth:`release_all`, then close the backend (a network backend ends its connection)."""
        try:
            self.release_all()
        finally:
            self.backend.close()

    def __enter__(self) -> LockOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
