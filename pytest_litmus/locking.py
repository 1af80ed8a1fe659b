"""Compatibility module: the lock API now lives in :mod:`pytest_litmus.locks`.

``from pytest_litmus.locking import LockOwner, list_locks, release_lock, ...``
keeps working; new code imports from :mod:`pytest_litmus.locks`.
"""

from __future__ import annotations

from pytest_litmus.locks import (
    Lease,
    LockKind,
    LockModeConflict,
    LockOwner,
    LockState,
    NoSuchLock,
    ReleaseResult,
    list_locks,
    lock_key,
    locks_dir,
    release_lock,
    release_visa_lock,
    take_visa_lock,
)
from pytest_litmus.locks._api import ACQUIRE_BACKOFF
from pytest_litmus.locks._visa import VISA_SHARED_KEY
from pytest_litmus.processes import current_user, holder_alive

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_START",
    "VISA_SHARED_KEY",
    "Lease",
    "LockKind",
    "LockModeConflict",
    "LockOwner",
    "LockState",
    "NoSuchLock",
    "ReleaseResult",
    "current_user",
    "holder_alive",
    "list_locks",
    "lock_key",
    "locks_dir",
    "release_lock",
    "release_visa_lock",
    "take_visa_lock",
]

#: First pause of a waiting acquire, in seconds; it doubles up to :data:`BACKOFF_CAP`.
BACKOFF_START = ACQUIRE_BACKOFF.first
#: Longest pause between two attempts: a freed lock is taken within this (plus one attempt).
BACKOFF_CAP = ACQUIRE_BACKOFF.cap
