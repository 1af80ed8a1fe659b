"""The host backend: ``flock`` on one lock file per resource under ``<data_dir>/locks/``.

The kernel's ``flock`` (exclusive, or shared for readers) is the only thing
that excludes, so a holder that dies for any reason, SIGKILL included, releases
at once. Holder records beside the lock file (:mod:`._records`) say who holds
it. A forced release unlinks the lock file: the next acquirer gets a new file,
and the old holder's :meth:`HostHold.check` (one ``stat``) sees the inode change.

The exclusive lock is the ``flock`` filelock takes, so a plain
:class:`filelock.FileLock` on a lock file contends with us. filelock has no
shared ``flock`` (its ``ReadWriteLock`` is SQLite record locks, ~1.1 ms per
acquire+release here), so the shared mode is ``LOCK_SH``.

``flock`` is POSIX: the calls live in :mod:`pytest_litmus._posix`, imported
on first use; elsewhere a host lock raises a :class:`~pytest_litmus.errors.LitmusError`.
"""

from __future__ import annotations

import itertools
import os
import secrets
from types import ModuleType
from typing import Any

from pytest_litmus.atomicfile import GROUP_FILE_BITS, make_dirs, share_fd, write_json
from pytest_litmus.errors import LitmusError, LockLost, NoSuchLock, ReleaseRefused, ResourceInUse
from pytest_litmus.locks._api import (
    Hold,
    LockBackend,
    LockMode,
    LockState,
    ReleaseResult,
    State,
    holder_summary,
    seconds_since,
)
from pytest_litmus.locks._perms import denied, existing
from pytest_litmus.locks._records import (
    KEY_PATTERN,
    LOCK_SUFFIX,
    LockFiles,
    check_lock_name,
    list_folder,
    lock_key,
    locks_dir,
    try_unlink,
)
from pytest_litmus.processes import current_user, holder_alive, identity, process_uid, user_name

__all__ = ["HostBackend", "HostHold", "list_locks", "platform", "release_lock"]

_TOKENS = itertools.count(1)
_platform: ModuleType | None = None


def platform() -> ModuleType:
    """:mod:`pytest_litmus._posix`, or a clear error where there is no ``flock``."""
    global _platform
    if _platform is None:
        try:
            from pytest_litmus import _posix
        except ImportError as exc:
            raise LitmusError(
                f"host instrument locks need a POSIX system with flock (fcntl: {exc}); "
                "use mock mode, lock: none, or a network lock backend"
            ) from None
        _platform = _posix
    return _platform


def _unlock_close(fd: int) -> None:
    # Unlock before closing: a child forked without exec shares the open file and would keep the flock.
    try:
        platform().unlock(fd)
    finally:
        os.close(fd)


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


def _open_lock_file(path: str) -> int:
    posix = platform()
    try:
        return os.open(path, posix.OPEN_FLAGS, 0o666)
    except PermissionError:  # another user's lock file: flock needs no write access
        pass
    try:
        return os.open(path, posix.READ_FLAGS)
    except FileNotFoundError:  # it was the directory that refused: we may not create the file
        raise denied(os.path.dirname(path), "create a lock file in", "w") from None
    except PermissionError:
        raise denied(path, "open the lock file", "r") from None


def try_lock_path(path: str, *, shared: bool) -> tuple[int, os.stat_result] | None:
    """Lock ``path`` if free: open, ``flock``, then check the path still names the locked inode.

    A forced release unlinks the lock file; an acquirer that opened the old inode
    before that and then won its ``flock`` holds a lock nobody else can see, so it
    drops it and retries on the new file at once (the standard unlink-safe pattern).
    """
    try_flock = platform().try_flock
    while True:
        fd = _open_lock_file(path)
        try:
            if not try_flock(fd, shared=shared):
                os.close(fd)
                return None
            st = os.fstat(fd)
            if _same_file(path, st):
                return fd, st
        except BaseException:
            os.close(fd)
            raise
        _unlock_close(fd)


class HostHold(Hold):
    """A held ``flock``: the open lock file and the identity of its inode."""

    backend: HostBackend

    def __init__(
        self,
        backend: HostBackend,
        resource: str,
        mode: LockMode,
        record: dict[str, Any],
        files: LockFiles,
        fd: int,
        st: os.stat_result,
        lock_path: str | None = None,
        record_path: str | None = None,
    ) -> None:
        super().__init__(backend, resource, mode, record)
        self.files = files
        self.fd = fd
        self.ident = (st.st_ino, st.st_dev)
        self.lock_path = lock_path or files.lock
        self.record_path = record_path or files.record(record["token"])

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock file was unlinked or replaced (one ``stat``, ~1 us)."""
        if self.released:
            return
        try:
            now = os.stat(self.lock_path)
        except FileNotFoundError:
            raise LockLost(self.resource, self.record.get("role") or None) from None
        except PermissionError:  # the directory was closed to us while we held the lock
            raise denied(self.lock_path, "check the lock file", "r") from None
        if (now.st_ino, now.st_dev) != self.ident:
            holders = self.files.live(now.st_ino)
            raise LockLost(self.resource, self.record.get("role") or None, holder_summary(holders))


class HostBackend(LockBackend):
    """``flock`` lock files under ``<data_dir>/locks/``: one host's processes exclude each other."""

    kind = "host"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = os.fspath(data_dir)
        self.folder = os.fspath(locks_dir(data_dir))
        self._made = False
        self._shared = False

    def __repr__(self) -> str:
        return f"HostBackend({self.data_dir!r})"

    def files(self, resource: str) -> LockFiles:
        return LockFiles(self.folder, lock_key(resource), self._shared)

    def _make_folder(self) -> None:
        """Make ``locks/`` (and the data dir): group-writable and setgid inside a setgid directory."""
        try:
            self._shared = make_dirs(self.folder)
        except PermissionError:
            raise denied(existing(self.folder), "create the lock directory in", "w") from None
        self._made = True

    # ------------------------------------------------------------------ acquiring

    def _try_acquire(self, resource: str, mode: LockMode, record: dict[str, Any]) -> Hold | None:
        if not self._made:
            self._make_folder()
        files = self.files(resource)
        lock = files.lock
        try:
            got = try_lock_path(lock, shared=mode == "shared")
        except FileNotFoundError:  # the folder was removed under us
            self._make_folder()
            got = try_lock_path(lock, shared=mode == "shared")
        if got is None:
            return None
        fd, st = got
        try:
            if files.shared and st.st_mode & GROUP_FILE_BITS != GROUP_FILE_BITS and st.st_uid == os.geteuid():
                share_fd(fd)  # made under a umask that keeps the group out (027, 077)
            mine = {**record, "key": files.key, "inode": st.st_ino, "token": f"{record['pid']}-{next(_TOKENS)}"}
            written = _publish(files, fd, st, mine, exclusive=mode == "exclusive")
        except BaseException:
            _unlock_close(fd)
            raise
        return HostHold(self, resource, mode, mine, files, fd, st, lock, written)

    def _release(self, hold: Hold) -> None:
        assert isinstance(hold, HostHold)
        try:
            try_unlink(hold.record_path)  # refused only if the directory changed under us: a stale record
        finally:
            _unlock_close(hold.fd)

    def _annotate(self, hold: Hold) -> None:
        assert isinstance(hold, HostHold)
        _write_record(hold.files, hold.record, rename=False)

    def holders(self, resource: str) -> list[dict[str, Any]]:
        return self._find(resource).holders()

    # ------------------------------------------------------------------ listing and releasing

    def list(self) -> list[LockState]:
        """``held``: a process holds it (holders: the live records); ``stale``: records name a
        holder but nobody holds the lock (the holder died); ``free``: neither."""
        names = list_folder(self.folder, "list the locks in")
        keys = [n[: -len(LOCK_SUFFIX)] for n in names if n.endswith(LOCK_SUFFIX)]
        return sorted((_lock_state(LockFiles(self.folder, k)) for k in keys), key=lambda s: s.resource)

    def force_release(self, resource: str, *, only_stale: bool = False) -> ReleaseResult:
        """Unlink the lock file so the next acquirer gets a new one; ``resource`` may be a lock key.

        ``resource`` is checked first (:func:`check_lock_name`: no paths, NUL or
        overlong names). Cleaning up after a dead holder is anyone's right who
        may write ``locks/``; breaking a live holder's lock is refused with
        :class:`ReleaseRefused` unless every live holder runs as this user, or
        this process is root.
        """
        files = self._find(check_lock_name(resource))
        if not os.path.exists(files.lock):
            raise NoSuchLock(resource, files.folder)
        got = try_lock_path(files.lock, shared=False)
        if got is not None:
            return _clean(files, got[0])
        holders = files.holders()
        name = files.resource_name(holders) if holders else resource
        if only_stale:
            raise ResourceInUse(name, holder_summary(holders))
        _may_break(name, holders)
        if not try_unlink(files.lock):
            raise denied(files.folder, "remove the lock file", "w", victim=files.lock)
        for record in holders:
            try_unlink(files.record(record.get("token")))
        return ReleaseResult(name, "broken", holders)

    def _find(self, resource: str) -> LockFiles:
        """``resource`` may be an address or a key as listed (only a key-shaped name is tried as a file name)."""
        if KEY_PATTERN.fullmatch(resource):
            as_key = LockFiles(self.folder, resource)
            if os.path.exists(as_key.lock):
                return as_key
        return self.files(resource)


def _holder_uid(record: dict[str, Any]) -> int | None:
    """The uid a live holder runs as: asked of the kernel on this host, else None."""
    pid = record.get("pid")
    if record.get("host") != identity()["host"] or not isinstance(pid, int):
        return None
    return process_uid(pid)


def _may_break(resource: str, holders: list[dict[str, Any]]) -> None:
    """Raise :class:`ReleaseRefused` unless root or the user of every live holder is breaking the lock."""
    euid = os.geteuid()
    if euid == 0:
        return
    me = current_user()
    if not holders:  # held, but the holder left no record (or it cannot be read)
        raise ReleaseRefused(resource, {}, "", me)
    for record in holders:
        uid = _holder_uid(record)
        user = user_name(uid) if uid is not None else str(record.get("user") or "")
        if (uid is not None and uid != euid) or (uid is None and user != me):
            raise ReleaseRefused(resource, record, user, me)


def _write_record(files: LockFiles, record: dict[str, Any], *, rename: bool = True) -> str:
    """Write a holder record (again, after a PermissionError); a PermissionError becomes :class:`AccessDenied`.

    ``rename``: if another user's file of the same name (a dead holder with our
    pid, in a sticky directory) cannot be replaced, take a new token instead.
    """
    path = files.record(record["token"])
    try:
        write_json(path, record, share=files.shared)
        return path
    except PermissionError:
        if not (rename and os.path.lexists(path)):
            raise denied(files.folder, "write a holder record in", "w", victim=path) from None
    record["token"] = f"{record['token']}-{secrets.token_hex(3)}"
    path = files.record(record["token"])
    try:
        write_json(path, record, share=files.shared)
    except PermissionError:
        raise denied(files.folder, "write a holder record in", "w") from None
    return path


def _publish(files: LockFiles, fd: int, st: os.stat_result, record: dict[str, Any], *, exclusive: bool) -> str:
    """Write the holder record (returns its path); an exclusive holder first clears records of holders that are gone."""
    if st.st_size == 0:  # name the resource inside the lock file, for listings once the records are gone
        try:
            os.pwrite(fd, str(record["resource"]).encode(), 0)
        except OSError:  # opened read-only (another user's file): the name is only a convenience
            pass
    if exclusive:
        files.clear_records()  # what the file system keeps (a dead user's, sticky dir) is ignored: stale
    path = files.record(record["token"])
    try:
        write_json(path, record, share=files.shared)
    except PermissionError:
        return _write_record(files, record)
    return path


def _probe_exclusive_holder(path: str) -> tuple[bool, int | None]:
    """(whether an exclusive flock is held, inode) without disturbing shared holders.

    The probe is one ``LOCK_SH | LOCK_NB``: it never waits and never blocks a
    shared holder or acquirer. On a free or shared lock it holds a shared lock
    for the microseconds of the probe, so an exclusive waiter retries at its next
    back-off tick; only an exclusive ``timeout=0`` try at that very instant could
    fail. A shared holding is told from the holder records.
    """
    posix = platform()
    try:
        fd = os.open(path, posix.READ_FLAGS)
    except FileNotFoundError:
        return False, None
    except PermissionError:
        raise denied(path, "read the lock file", "r") from None
    try:
        locked = posix.try_flock(fd, shared=True)
        return not locked, os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _lock_state(files: LockFiles) -> LockState:
    exclusive_held, lock_inode = _probe_exclusive_holder(files.lock)
    records = files.records()
    live = [r for r in records if r.get("inode") == lock_inode and holder_alive(r)]
    state: State
    if exclusive_held or any(r.get("mode") == "shared" for r in live):
        state, shown = "held", live
    elif records:
        state, shown = "stale", records
    else:
        state, shown = "free", []
    held_for = seconds_since(shown[0].get("since")) if state == "held" and shown else None
    return LockState(files.resource_name(records), files.key, state, shown, held_for, files.lock)


def _clean(files: LockFiles, fd: int) -> ReleaseResult:
    """Holding the lock: remove its records and the lock file (waiters that opened it retry on a new one).

    Removes what the file system allows; if it keeps something (another user's
    file in a sticky directory), :class:`AccessDenied` names it and its owner
    once the rest is gone. The lock itself is free either way.
    """
    try:
        records = files.records()
        resource = files.resource_name(records)
        kept = files.clear_records()
        if not try_unlink(files.lock):
            kept.insert(0, files.lock)
    finally:
        _unlock_close(fd)
    if kept:
        raise denied(
            files.folder,
            "clean up a dead holder's files at",
            "w",
            victim=kept[0],
            note=f"the lock on {resource} itself is free to take; {len(kept)} leftover file(s) stay",
        )
    return ReleaseResult(resource, "cleaned", records)


def list_locks(data_dir: str | os.PathLike[str]) -> list[LockState]:
    """The state of every host lock under ``<data_dir>/locks/``, sorted by resource (:meth:`HostBackend.list`)."""
    return HostBackend(data_dir).list()


def release_lock(data_dir: str | os.PathLike[str], resource: str, *, force: bool = False) -> ReleaseResult:
    """Free the host lock on ``resource``: ``cleaned`` if its holder is gone; a live holder raises
    :class:`ResourceInUse` unless ``force``, which breaks it (``broken``; the holder's next
    check raises :class:`LockLost`). :class:`NoSuchLock` if there is no lock file.
    """
    return HostBackend(data_dir).force_release(resource, only_stale=not force)
