"""VISA resource locks of one simulated instrument (viLock / viUnlock semantics).

Exclusive locks belong to one session; shared locks to every session that
presents the same access key. Locks nest per session: each ``lock`` needs its
``unlock``. A session that holds no lock on a locked resource gets
``VI_ERROR_RSRC_LOCKED`` on I/O, as with a real VISA library. This is the lock
table of one process; :mod:`pytest_litmus.sim.hostlocks` makes it hold against
other processes (the library asks :meth:`ResourceLocks.host_mode` what to hold).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter

from pyvisa import constants

from pytest_litmus.sim.hostlocks import EXCLUSIVE, Mode

__all__ = ["ResourceLocks", "timeout_seconds"]

StatusCode = constants.StatusCode
_keys = itertools.count(1)
_PID = os.getpid()  # generated keys are unique on the host: another process may be handed one


def timeout_seconds(timeout_ms: int | float | None) -> float | None:
    """A VISA timeout in ms as seconds for ``Condition.wait``: None waits forever."""
    if timeout_ms is None or timeout_ms >= constants.VI_TMO_INFINITE:
        return None
    return max(0.0, timeout_ms / 1000.0)


class ResourceLocks:
    """The lock state of one resource; every method runs under ``cond``."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._exclusive: int | None = None
        self._shared_key: str | None = None
        self._shared: Counter[int] = Counter()
        self._held: dict[int, list[constants.Lock]] = {}

    def allows(self, session: int) -> bool:
        """May ``session`` do I/O on the resource now?"""
        if self._exclusive is not None:
            return self._exclusive == session
        return self._shared_key is None or self._shared[session] > 0

    def host_mode(self) -> Mode:
        """What this process must hold on the host: exclusive, shared with its key, or nothing."""
        with self._cond:
            if self._exclusive is not None:
                return EXCLUSIVE
            return None if self._shared_key is None else ("shared", self._shared_key)

    def acquire(
        self, session: int, lock_type: constants.Lock, timeout_ms: int | float | None, requested_key: str | None
    ) -> tuple[str, StatusCode]:
        """viLock: wait up to ``timeout_ms`` (0 fails at once, VI_TMO_INFINITE never gives up)."""
        exclusive = lock_type == constants.Lock.exclusive
        if not exclusive and lock_type != constants.Lock.shared:
            return "", StatusCode.error_invalid_lock_type
        key = requested_key
        with self._cond:
            if not exclusive and key is None:
                key = (
                    self._shared_key
                    if self._shared_key and self._shared[session]
                    else f"litmus-sim-{_PID}-{next(_keys)}"
                )

            def grantable() -> bool:
                if self._exclusive not in (None, session):
                    return False
                if exclusive:
                    return all(holder == session for holder, n in self._shared.items() if n)
                return self._shared_key in (None, key)

            timeout = timeout_seconds(timeout_ms)
            if not grantable():
                if timeout == 0:
                    return "", StatusCode.error_resource_locked
                deadline = None if timeout is None else time.monotonic() + timeout
                while not grantable():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return "", StatusCode.error_timeout
                    self._cond.wait(remaining)
            held = self._held.setdefault(session, [])
            nested = any(kind == lock_type for kind in held)
            held.append(lock_type)
            if exclusive:
                self._exclusive = session
                return "", StatusCode.success_nested_exclusive if nested else StatusCode.success
            assert key is not None
            self._shared_key = key
            self._shared[session] += 1
            return key, StatusCode.success_nested_shared if nested else StatusCode.success

    def release(self, session: int) -> StatusCode:
        """viUnlock: give back the most recent lock of ``session``."""
        with self._cond:
            held = self._held.get(session)
            if not held:
                return StatusCode.error_session_not_locked
            self._drop(session, held.pop())
            if not held:
                del self._held[session]
            self._cond.notify_all()
            return StatusCode.success

    def release_all(self, session: int) -> None:
        """Closing a session gives back all its locks."""
        with self._cond:
            for kind in reversed(self._held.pop(session, [])):
                self._drop(session, kind)
            self._cond.notify_all()

    def _drop(self, session: int, kind: constants.Lock) -> None:
        if kind == constants.Lock.exclusive:
            if constants.Lock.exclusive not in self._held.get(session, []):
                self._exclusive = None
            return
        self._shared[session] -= 1
        if self._shared[session] <= 0:
            del self._shared[session]
        if not self._shared:
            self._shared_key = None
