"""Per-resource instrument locks across processes, behind one backend interface.

- :mod:`._api`: :class:`LockBackend` and :class:`Hold`, the interface every backend implements;
- :mod:`._host`: :class:`HostBackend`, ``flock`` lock files under ``<data_dir>/locks/``;
- :mod:`._visa`: :class:`VisaBackend`, the instrument-side lock on an opened VISA session;
- :mod:`._postgres`: :class:`PostgresBackend`, advisory locks of a PostgreSQL server shared by test PCs
  (psycopg imported on first use); :mod:`._pgsql`: its keys, SQL and server connection;
- :mod:`._records`: lock file names and holder records;
- :mod:`._perms`: permission refusals on a data dir shared by several users, as errors that say what to do;
- :mod:`._owner`: :class:`LockOwner` and :class:`Lease`, one session's locks.

Use: one :class:`LockOwner` per session; :meth:`LockOwner.acquire` returns a
:class:`Lease`; :meth:`Lease.check` before each instrument call raises
:class:`~pytest_litmus.errors.LockLost` when ``litmus locks release --force``
took the lock away; :meth:`LockOwner.release_all` at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_litmus.dburl import redact_url
from pytest_litmus.errors import (
    AccessDenied,
    InvalidName,
    LockLost,
    LockModeConflict,
    NoSuchLock,
    ReleaseRefused,
    ResourceInUse,
)
from pytest_litmus.locks._api import (
    ACQUIRE_BACKOFF,
    Hold,
    LockBackend,
    LockKind,
    LockMode,
    LockState,
    LockUnsupported,
    OnContended,
    ReleaseResult,
    check_timeout,
)
from pytest_litmus.locks._host import HostBackend, HostHold, list_locks, release_lock
from pytest_litmus.locks._owner import Lease, LockOwner
from pytest_litmus.locks._records import check_lock_name, damaged_records, lock_key, locks_dir
from pytest_litmus.locks._visa import VISA_SHARED_KEY, VisaBackend, release_visa_lock, take_visa_lock

if TYPE_CHECKING:
    from pytest_litmus.locks._postgres import PostgresBackend, PostgresHold, pg_lock_key

__all__ = [
    "ACQUIRE_BACKOFF",
    "VISA_SHARED_KEY",
    "AccessDenied",
    "Hold",
    "HostBackend",
    "HostHold",
    "InvalidName",
    "Lease",
    "LockBackend",
    "LockKind",
    "LockLost",
    "LockMode",
    "LockModeConflict",
    "LockOwner",
    "LockState",
    "LockUnsupported",
    "NoSuchLock",
    "OnContended",
    "PostgresBackend",
    "PostgresHold",
    "ReleaseRefused",
    "ReleaseResult",
    "ResourceInUse",
    "VisaBackend",
    "check_lock_name",
    "check_timeout",
    "damaged_records",
    "list_locks",
    "lock_key",
    "locks_dir",
    "pg_lock_key",
    "redact_url",
    "release_lock",
    "release_visa_lock",
    "take_visa_lock",
]


#: The PostgreSQL backend, imported on first use: a run on host locks does not load it.
_LAZY = {"PostgresBackend", "PostgresHold", "pg_lock_key"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from pytest_litmus.locks import _postgres

        return getattr(_postgres, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
