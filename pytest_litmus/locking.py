"""Per-resource instrument locks across processes: host ``flock`` locks plus optional VISA locks.

One lock file per resource address under ``<data_dir>/locks/``, locked with the
kernel's ``flock`` (exclusive or shared), so a holder that dies for any reason,
SIGKILL included, releases at once. Beside each lock, every holder writes a JSON
record (pid, host, user, session, station, role, test, since, mode, kind); the
records say who holds a lock but never decide who may take it: only ``flock``
excludes.

The exclusive lock is filelock's own descriptor lock (:func:`filelock.lock_descriptor`),
so a plain :class:`filelock.FileLock` on a lock file contends with us. filelock has
no shared ``flock`` (its :class:`filelock.ReadWriteLock` is SQLite record locks and
measured ~1.1 ms per acquire+release here), so the shared mode is ``LOCK_SH``.

Use: one :class:`LockOwner` per session; :meth:`LockOwner.acquire` returns a
:class:`Lease`; call :meth:`Lease.check` before each instrument call (it raises
:class:`~pytest_litmus.errors.LockLost` when ``litmus locks release --force``
took the lock away); :meth:`LockOwner.release_all` at the end.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import getpass
import hashlib
import itertools
import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple

import filelock

from pytest_litmus.config import LOCK_MODES, LockMode
from pytest_litmus.errors import LitmusError, LockLost, LockModeConflict, NoSuchLock, ResourceInUse

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_START",
    "Lease",
    "LockKind",
    "LockModeConflict",
    "LockOwner",
    "LockState",
    "NoSuchLock",
    "ReleaseResult",
    "list_locks",
    "lock_key",
    "locks_dir",
    "release_lock",
    "holder_alive",
    "release_visa_lock",
    "take_visa_lock",
]

_LOG = logging.getLogger(__name__)

LOCKS_DIR = "locks"
LOCK_SUFFIX = ".lock"
RECORD_SUFFIX = ".json"
#: First pause of a waiting acquire, in seconds; it doubles up to :data:`BACKOFF_CAP`.
BACKOFF_START = 0.001
#: Longest pause between two attempts: a freed lock is taken within this (plus one attempt).
BACKOFF_CAP = 0.025
#: The ``requested_key`` every litmus session uses for shared VISA locks, so they share.
VISA_SHARED_KEY = "litmus"
_VI_ERROR_NSUP_OPER = -1073807257  # pyvisa.constants.StatusCode.error_nonsupported_operation
_VI_ERROR_RSRC_LOCKED = -1073807345
_VI_ERROR_TMO = -1073807339
_VI_TMO_INFINITE = 0xFFFFFFFF
_CONTENTION = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)

#: ``host`` a host flock only; ``visa`` a host flock and an instrument-side VISA lock; ``none`` no lock.
LockKind = Literal["host", "visa", "none"]
State = Literal["held", "free", "stale"]






# --------------------------------------------------------------------------- names and identity


def locks_dir(data_dir: str | os.PathLike[str]) -> Path:
    """``<data_dir>/locks``."""
    return Path(data_dir) / LOCKS_DIR


@functools.lru_cache(maxsize=256)
def _canonical_resource(resource: str) -> str:
    """VISA resource names are case-insensitive and have aliases (``GPIB::17`` is ``GPIB0::17::INSTR``)."""
    text = resource.strip().upper()
    try:
        from pyvisa import rname

        return str(rname.to_canonical_name(text)).upper()
    except Exception:  # not a VISA name pyvisa parses: lock the text as given
        return text


@functools.lru_cache(maxsize=256)
def lock_key(resource: str) -> str:
    """A file-name-safe key for a resource address: readable text plus a short hash of its canonical form."""
    canonical = _canonical_resource(resource)
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", canonical).strip("_")[:60] or "resource"
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return f"{text}-{digest}"


def _start_token(pid: int) -> int | None:
    """The process start time in clock ticks (Linux), so a reused pid is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def current_user() -> str:
    """This process's user name (its uid where there is no passwd entry, as in containers)."""
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@functools.lru_cache(maxsize=1)
def _identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "user": current_user(), "start": _start_token(pid)}


def _this_identity() -> dict[str, Any]:
    ident = _identity()
    if ident["pid"] != os.getpid():  # forked since: this is another process
        _identity.cache_clear()
        ident = _identity()
    return dict(ident)


def holder_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process a record names still runs; a holder on another host counts as alive."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        pid = int(record["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, another user's
        pass
    start = record.get("start")
    return start is None or _start_token(pid) in (None, start)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _seconds_since(iso: Any) -> float | None:
    try:
        return max(0.0, (datetime.now(timezone.utc) - datetime.fromisoformat(str(iso))).total_seconds())
    except ValueError:
        return None


# --------------------------------------------------------------------------- flock on one file


def _try_flock(fd: int, *, shared: bool) -> bool:
    """One non-blocking ``flock``; False on contention."""
    if not shared:
        return filelock.lock_descriptor(fd, blocking=False)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENTION:
            return False
        raise
    return True


def _unlock_close(fd: int) -> None:
    # Unlock before closing: a child forked without exec shares the open file and would keep the flock.
    try:
        filelock.unlock_descriptor(fd)
    finally:
        os.close(fd)


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


def _open_lock_file(path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS, 0o666)
    except PermissionError:  # another user's lock file: flock needs no write access
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))


def _try_lock_path(path: str, *, shared: bool) -> tuple[int, os.stat_result] | None:
    """Lock ``path`` if free: open, ``flock``, then check the path still names the locked inode.

    A forced release unlinks the lock file; an acquirer that opened the old inode
    before that and then won its ``flock`` holds a lock nobody else can see, so it
    drops it and retries on the new file at once (the standard unlink-safe pattern).
    """
    while True:
        fd = _open_lock_file(path)
        try:
            if not _try_flock(fd, shared=shared):
                os.close(fd)
                return None
            st = os.fstat(fd)
            if _same_file(path, st):
                return fd, st
        except BaseException:
            os.close(fd)
            raise
        _unlock_close(fd)


# --------------------------------------------------------------------------- holder records


class _Files(NamedTuple):
    """The files of one lock, as plain strings (pathlib costs more than the syscalls here)."""

    folder: str
    key: str

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str], key: str) -> _Files:
        return cls(os.path.join(os.fspath(data_dir), LOCKS_DIR), key)

    @property
    def lock(self) -> str:
        return os.path.join(self.folder, f"{self.key}{LOCK_SUFFIX}")

    def record(self, token: object) -> str:
        return os.path.join(self.folder, f"{self.key}.{token}{RECORD_SUFFIX}")

    def records(self) -> list[str]:
        """Paths of every holder record of this lock."""
        prefix = f"{self.key}."
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [os.path.join(self.folder, n) for n in names if n.startswith(prefix) and n.endswith(RECORD_SUFFIX)]


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):  # gone, or not ours
        return None
    return data if isinstance(data, dict) else None


def _read_records(files: _Files) -> list[dict[str, Any]]:
    """Every holder record of the lock, oldest first."""
    records = [r for r in map(_read_json, files.records()) if r is not None]
    return sorted(records, key=lambda r: str(r.get("since", "")))


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    """Write atomically (temp file and rename): a reader sees the old record or the new one."""
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, json.dumps(data, sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _current_holders(files: _Files, inode: int | None) -> list[dict[str, Any]]:
    """Records of live holders of the lock file's current inode (a forced-out holder's record is not one)."""
    return [r for r in _read_records(files) if holder_alive(r) and (inode is None or r.get("inode") == inode)]


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _holder_summary(holders: list[dict[str, Any]]) -> dict[str, Any]:
    """One holder mapping for errors: the oldest holder, plus ``holders`` listing all when shared."""
    if not holders:
        return {}
    first = dict(holders[0])
    if len(holders) > 1:
        first["holders"] = holders
    return first


# --------------------------------------------------------------------------- leases and owners


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None or timeout == float("inf"):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"lock timeout must be seconds >= 0 or None (wait forever), got {timeout!r}")
    return float(timeout)


def _wait_for_lock(
    path: str,
    *,
    shared: bool,
    timeout: float | None,
    on_contended: Callable[[], None] | None,
) -> tuple[tuple[int, os.stat_result] | None, float]:
    """Attempt, then back off 1 ms doubling to :data:`BACKOFF_CAP` (with jitter) until locked or timed out.

    Returns the locked (fd, stat), or None on timeout, and the seconds waited.
    """
    start = time.monotonic()
    delay = BACKOFF_START
    while True:
        got = _try_lock_path(path, shared=shared)
        if got is not None:
            return got, time.monotonic() - start
        remaining = None if timeout is None else start + timeout - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None, time.monotonic() - start
        if on_contended is not None:  # about to wait: say once who holds it
            on_contended()
            on_contended = None
        pause = delay * random.uniform(0.5, 1.0)
        time.sleep(pause if remaining is None else min(pause, remaining))
        delay = min(delay * 2, BACKOFF_CAP)


_TOKENS = itertools.count(1)


class Lease:
    """One owner's hold on one resource: re-entrant, released by :meth:`release` or its owner."""

    def __init__(
        self,
        owner: LockOwner | None,
        resource: str,
        mode: LockMode,
        *,
        files: _Files | None = None,
        role: str = "",
        waited: float = 0.0,
        fd: int = -1,
        st: os.stat_result | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.owner = owner
        self.resource = resource
        self.mode: LockMode = mode
        self.role = role
        self.waited = waited
        self.record: dict[str, Any] = record or {}
        self.kind: LockKind = "host" if fd >= 0 else "none"
        self.depth = 1
        self._fd = fd
        self._ident = (st.st_ino, st.st_dev) if st is not None else (0, 0)
        self._files = files or _Files("", "")
        self._lock_path = self._files.lock
        self._record_path = self._files.record(self.record.get("token"))
        self._visa: Any = None

    @property
    def held(self) -> bool:
        return self.depth > 0

    @property
    def lock_path(self) -> Path:
        return Path(self._lock_path)

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock was taken from under this lease (one ``stat``, ~1 us).

        A released lease (or one of mode ``none``) has nothing to lose: no-op.
        """
        if self._fd < 0:
            return
        try:
            now = os.stat(self._lock_path)
        except FileNotFoundError:
            raise self._lost(None) from None
        if (now.st_ino, now.st_dev) != self._ident:
            raise self._lost(now.st_ino)

    def _lost(self, inode: int | None) -> LockLost:
        holders = _current_holders(self._files, inode) if inode is not None else []
        return LockLost(self.resource, self.role or None, _holder_summary(holders))

    def annotate(self, **fields: Any) -> None:
        """Update holder-record fields (``nodeid`` of the running test, ``kind``) and rewrite the record."""
        self.record.update(fields)
        if self._fd >= 0:
            _write_json(self._record_path, self.record)

    def take_visa(self, resource: Any, timeout: float | None = 0.0) -> LockKind:
        """Also take the instrument-side VISA lock on the opened pyvisa ``resource``; records the kind taken.

        It is unlocked before the host lock when this lease is released. If the
        VISA lock is refused (:class:`ResourceInUse`), this lease is released
        (one level) before the error propagates.
        """
        if self._fd < 0 or self._visa is not None:
            return self.kind
        try:
            kind = take_visa_lock(resource, self.mode, timeout)
        except BaseException:
            self.release()
            raise
        if kind == "visa":
            self._visa = resource
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
        self._release_physical()
        return True

    def _release_physical(self) -> None:
        if self._visa is not None:
            visa, self._visa = self._visa, None
            release_visa_lock(visa, "visa")
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            _unlink(self._record_path)
            _unlock_close(fd)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lease {self.resource} {self.mode} {self.kind} depth={self.depth}>"


@dataclass(eq=False)
class LockOwner:
    """Holds one session's locks: re-entrant per resource, released in reverse acquisition order.

    ``data_dir`` is the litmus data dir (locks go in ``<data_dir>/locks/``);
    ``session`` and ``station`` go into every holder record.
    """

    data_dir: Path
    session: str = ""
    station: str = ""
    _leases: dict[str, Lease] = field(default_factory=dict, init=False, repr=False)
    _mutex: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

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
        on_contended: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> Lease:
        """Lock ``resource`` (a VISA address) for this owner and return the lease.

        ``timeout`` in seconds as PyVISA's: 0 fails at once, a positive number
        waits that long, None waits forever. Raises :class:`ResourceInUse` with the
        current holder (``holder["holders"]`` lists all when several share it) and
        ``waited``. ``on_contended(holder)`` is called once if the first attempt
        finds the lock held and it is going to wait (for a ``LockContended`` event). Mode ``none`` returns
        a lease that locks nothing.
        """
        if mode not in LOCK_MODES:
            raise ValueError(f"lock mode must be one of {', '.join(LOCK_MODES)}, got {mode!r}")
        limit = _check_timeout(timeout)
        if mode == "none":
            return Lease(None, resource, mode, role=role)
        key = lock_key(resource)
        again = self._reenter(key, resource, mode)
        if again is not None:
            return again
        lease = self._acquire_new(resource, key, mode, limit, role=role, nodeid=nodeid, on_contended=on_contended)
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

    def _acquire_new(
        self,
        resource: str,
        key: str,
        mode: LockMode,
        timeout: float | None,
        *,
        role: str,
        nodeid: str,
        on_contended: Callable[[Mapping[str, Any]], None] | None,
    ) -> Lease:
        files = _Files.of(self.data_dir, key)
        os.makedirs(files.folder, exist_ok=True)
        notify = None
        if on_contended is not None:
            callback = on_contended

            def notify() -> None:
                callback(_holder_summary(_current_holders(files, _inode(files.lock))))

        got, waited = _wait_for_lock(files.lock, shared=mode == "shared", timeout=timeout, on_contended=notify)
        if got is None:
            raise ResourceInUse(resource, _holder_summary(_current_holders(files, _inode(files.lock))), waited=waited)
        fd, st = got
        try:
            record = self._record(resource, key, mode, role, nodeid, st)
            _publish(files, fd, st, record, exclusive=mode == "exclusive")
        except BaseException:
            _unlock_close(fd)
            raise
        return Lease(self, resource, mode, files=files, role=role, waited=waited, fd=fd, st=st, record=record)

    def _record(
        self, resource: str, key: str, mode: LockMode, role: str, nodeid: str, st: os.stat_result
    ) -> dict[str, Any]:
        ident = _this_identity()
        return {
            **ident,
            "resource": resource,
            "key": key,
            "session": self.session,
            "station": self.station,
            "role": role,
            "nodeid": nodeid,
            "since": _now_iso(),
            "mode": mode,
            "kind": "host",
            "inode": st.st_ino,
            "token": f"{ident['pid']}-{next(_TOKENS)}",
        }

    def release(self, resource: str) -> None:
        """Release one level of this owner's lease on ``resource`` (no-op if not held)."""
        lease = self.lease(resource)
        if lease is not None:
            self._release_lease(lease)

    def _release_lease(self, lease: Lease) -> None:
        with self._mutex:
            key = lease._files.key
            if self._leases.get(key) is lease and lease._drop(all_levels=False):
                del self._leases[key]

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

    def __enter__(self) -> LockOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()


def _publish(files: _Files, fd: int, st: os.stat_result, record: Mapping[str, Any], *, exclusive: bool) -> None:
    """Write the holder record; an exclusive holder first clears records of holders that are gone."""
    if st.st_size == 0:  # name the resource inside the lock file, for listings once the records are gone
        try:
            os.pwrite(fd, str(record["resource"]).encode(), 0)
        except OSError:  # opened read-only (another user's file): the name is only a convenience
            pass
    if exclusive:
        for stale in files.records():
            _unlink(stale)
    _write_json(files.record(record["token"]), record)


# --------------------------------------------------------------------------- listing and releasing


@dataclass(frozen=True)
class LockState:
    """What ``litmus locks`` shows for one lock file."""

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


def _probe_exclusive_holder(path: str) -> tuple[bool, int | None]:
    """(whether an exclusive flock is held, inode) without disturbing shared holders.

    The probe is one ``LOCK_SH | LOCK_NB``: it never waits and never blocks a
    shared holder or acquirer. On a free or shared lock it holds a shared lock
    for the microseconds of the probe, so an exclusive waiter retries at its next
    back-off tick; only an exclusive ``timeout=0`` try at that very instant could
    fail. A shared holding is told from the holder records.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return False, None
    try:
        locked = _try_flock(fd, shared=True)
        return not locked, os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _resource_name(files: _Files, records: list[dict[str, Any]]) -> str:
    """The address from the holder records, else from inside the lock file, else the key."""
    if records:
        return str(records[0].get("resource", files.key))
    try:
        return Path(files.lock).read_text(encoding="utf-8", errors="replace").strip() or files.key
    except OSError:
        return files.key


def _lock_state(files: _Files) -> LockState:
    exclusive_held, inode = _probe_exclusive_holder(files.lock)
    records = _read_records(files)
    live = [r for r in records if r.get("inode") == inode and holder_alive(r)]
    state: State
    if exclusive_held or any(r.get("mode") == "shared" for r in live):
        state, shown = "held", live
    elif records:
        state, shown = "stale", records
    else:
        state, shown = "free", []
    held_for = _seconds_since(shown[0].get("since")) if state == "held" and shown else None
    return LockState(_resource_name(files, records), files.key, state, shown, held_for, files.lock)


def list_locks(data_dir: str | os.PathLike[str]) -> list[LockState]:
    """The state of every lock under ``<data_dir>/locks/``, sorted by resource.

    ``held``: a process holds it (holders: the live records); ``stale``: records
    name a holder but nobody holds the lock (the holder died); ``free``: neither.
    """
    try:
        names = os.listdir(locks_dir(data_dir))
    except FileNotFoundError:
        return []
    keys = [n[: -len(LOCK_SUFFIX)] for n in names if n.endswith(LOCK_SUFFIX)]
    return sorted((_lock_state(_Files.of(data_dir, k)) for k in keys), key=lambda s: s.resource)


@dataclass(frozen=True)
class ReleaseResult:
    """What :func:`release_lock` did: ``cleaned`` (nobody held it) or ``broken`` (forced from a live holder)."""

    resource: str
    action: Literal["cleaned", "broken"]
    holders: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "holders": self.holders}


def release_lock(data_dir: str | os.PathLike[str], resource: str, *, force: bool = False) -> ReleaseResult:
    """Free the lock on ``resource``.

    If no process holds it (its holder died), remove its files: ``cleaned``. If
    a live process holds it, raise :class:`ResourceInUse` naming it, unless
    ``force``: then unlink the lock file so the next acquirer gets a new one
    (the old holder's next :meth:`Lease.check` raises :class:`LockLost`):
    ``broken``, with the holders whose lock was broken. :class:`NoSuchLock` if
    there is no lock file. ``resource`` is an address or a lock key.
    """
    files = _find(data_dir, resource)
    if not os.path.exists(files.lock):
        raise NoSuchLock(resource, files.folder)
    got = _try_lock_path(files.lock, shared=False)
    if got is not None:
        return _clean(files, got[0])
    holders = _current_holders(files, _inode(files.lock))
    name = _resource_name(files, holders) if holders else resource
    if not force:
        raise ResourceInUse(name, _holder_summary(holders))
    _unlink(files.lock)
    for record in holders:
        _unlink(files.record(record.get("token")))
    return ReleaseResult(name, "broken", holders)


def _find(data_dir: str | os.PathLike[str], resource: str) -> _Files:
    """``resource`` may be an address or a key as listed."""
    as_key = _Files.of(data_dir, resource)
    return as_key if os.path.exists(as_key.lock) else _Files.of(data_dir, lock_key(resource))


def _clean(files: _Files, fd: int) -> ReleaseResult:
    """Holding the lock: remove its records and the lock file (waiters that opened it retry on a new one)."""
    try:
        records = _read_records(files)
        resource = _resource_name(files, records)
        for record_path in files.records():
            _unlink(record_path)
        _unlink(files.lock)
    finally:
        _unlock_close(fd)
    return ReleaseResult(resource, "cleaned", records)


# --------------------------------------------------------------------------- VISA locks


def _visa_timeout_ms(timeout: float | None) -> int:
    limit = _check_timeout(timeout)
    return _VI_TMO_INFINITE if limit is None else int(limit * 1000)


def _visa_error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "error_code", None)
    return int(code) if isinstance(code, int) else None


def _unsupported(exc: BaseException) -> bool:
    """``NotImplementedError`` or ``VisaIOError(VI_ERROR_NSUP_OPER)``: the backend takes no VISA locks."""
    return isinstance(exc, NotImplementedError) or _visa_error_code(exc) == _VI_ERROR_NSUP_OPER


def take_visa_lock(resource: Any, mode: LockMode, timeout: float | None = 0.0) -> LockKind:
    """Take the instrument-side VISA lock on an opened pyvisa resource; the kind of lock now held.

    ``exclusive``: ``lock_excl``; ``shared``: ``lock(requested_key="litmus")``.
    Returns ``visa``, or ``host`` where the backend takes no VISA locks (pyvisa-sim,
    pyvisa-py on anything but VXI-11), or ``none`` for mode ``none``. A VISA lock
    held elsewhere (timeout, resource locked) raises :class:`ResourceInUse`.
    """
    if mode == "none":
        return "none"
    timeout_ms = _visa_timeout_ms(timeout)
    try:
        if mode == "shared":
            resource.lock(timeout=timeout_ms, requested_key=VISA_SHARED_KEY)
        else:
            resource.lock_excl(timeout=timeout_ms)
    except Exception as exc:
        if _unsupported(exc):
            return "host"
        if _visa_error_code(exc) in (_VI_ERROR_TMO, _VI_ERROR_RSRC_LOCKED):
            name = str(getattr(resource, "resource_name", resource))
            holder = {"kind": "visa", "host": "another VISA session (maybe another machine)"}
            raise ResourceInUse(name, holder, waited=timeout or 0.0) from exc
        raise
    return "visa"


def release_visa_lock(resource: Any, kind: str) -> None:
    """Undo :func:`take_visa_lock` (only when it returned ``visa``); a failure is logged, not raised.

    Closing a VISA session releases its locks anyway, so an unlock that fails on a
    closed session is harmless.
    """
    if kind != "visa":
        return
    try:
        resource.unlock()
    except Exception as exc:
        _LOG.warning("could not unlock the VISA lock on %s: %s", getattr(resource, "resource_name", resource), exc)

