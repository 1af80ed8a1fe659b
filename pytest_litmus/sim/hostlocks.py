"""VISA locks of simulated instruments across the processes of one computer (flock files).

NI-VISA's locks hold "for all processes on the same computer"; so do the
simulator's. One lock file set per (simulation file realpath, canonical
resource), hashed, in a per-user directory (``<tmp>/litmus-sim-<uid>``, 0700):

- ``<h>.main``: an exclusive VISA lock is ``LOCK_EX`` on it, a shared one ``LOCK_SH``;
- ``<h>.key.<k>``: a shared lock with access key ``K`` also holds ``LOCK_SH`` on
  its key file, so a process presenting another key finds it live (its
  ``LOCK_EX|LOCK_NB`` fails) and waits;
- ``<h>.gate``: held ``LOCK_EX`` for the few microseconds of each attempt, so
  attempts (and ``lock_state`` probes) of several processes never interleave.

A :class:`HostLock` is one library's view of one resource: it holds the OS lock
while any session of that library holds a VISA lock on the resource, and drops
it with the last one (or when the process dies: the kernel releases flocks, even
on SIGKILL). Which session holds what stays :class:`~pytest_litmus.sim.locks.ResourceLocks`'
business. Only lock operations touch these files; I/O never does. Without
``fcntl`` (Windows) :func:`host_lock` returns None and locks hold within the
process only.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from types import ModuleType

from pytest_litmus.backoff import Backoff, Poll
from pytest_litmus.errors import AccessDenied
from pytest_litmus.processes import user_name

__all__ = ["HostLock", "Mode", "host_lock", "runtime_dir"]

#: The OS lock a process holds on a resource: None, "exclusive" or ("shared", key).
Mode = tuple[str, str | None] | None
EXCLUSIVE: Mode = ("exclusive", None)

#: Waiting for another process polls on this schedule (lock operations only).
WAIT = Backoff(first=0.001, cap=0.025, jitter=0.5)
#: The gate is held for microseconds; a ``timeout=0`` attempt still waits this long for it.
GATE_GRACE = 1.0


def _platform() -> ModuleType | None:
    try:
        from pytest_litmus import _posix
    except ImportError:  # no fcntl: locks hold within the process only
        return None
    return _posix


def runtime_dir() -> str:
    """The per-user directory of lock files, created 0700; refused if a symlink or someone else's."""
    path = os.path.join(tempfile.gettempdir(), f"litmus-sim-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory" if not stat.S_ISDIR(st.st_mode) else ""
        raise AccessDenied(
            path,
            "keep simulated VISA locks in",
            owner=user_name(st.st_uid),
            mode=f"{stat.S_IMODE(st.st_mode):04o}",
            user=user_name(os.getuid()),
            hint=f"it is {what or 'not yours'}; remove it (it holds only lock files) and retry",
        )
    return path


def host_lock(simulation: str, resource: str) -> HostLock | None:
    """The cross-process lock of ``resource`` of ``simulation`` (a realpath), or None without flock."""
    posix = _platform()
    return None if posix is None else HostLock(posix, simulation, resource)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]


class HostLock:
    """One library's OS-level hold on one simulated resource."""

    def __init__(self, posix: ModuleType, simulation: str, resource: str) -> None:
        self._posix = posix
        self._name = _digest(f"{simulation}\0{resource}")
        self._dir: str | None = None
        self._mutex = threading.Lock()
        self._main: int | None = None
        self._key_fd: int | None = None
        self.mode: Mode = None

    # -- the public operations (serialised per HostLock) ------------------------

    def reconcile(self, wanted: Callable[[], Mode], poll: Poll) -> bool:
        """Hold what ``wanted()`` says (asked again each attempt; None: nothing).

        False if ``poll`` expired while another process held the resource.
        """
        with self._mutex:
            while True:
                want = wanted()
                if self.mode == want or self._attempt(want, poll):
                    return True
                if poll.expired:
                    return False
                poll.sleep()

    def others(self) -> Mode:
        """What other processes hold on the resource (call while this one holds nothing)."""
        with self._mutex:
            if self.mode is not None:
                return None
            with self._gate(WAIT.start(GATE_GRACE)) as gated:
                if not gated:
                    return EXCLUSIVE  # someone holds the gate for a second: treat as busy
                fd = self._open("main")
                try:
                    if not self._posix.try_flock(fd, shared=True):
                        return EXCLUSIVE
                    self._posix.unlock(fd)
                    if not self._posix.try_flock(fd, shared=False):
                        return ("shared", None)
                    self._posix.unlock(fd)
                    return None
                finally:
                    os.close(fd)

    def close(self) -> None:
        """Drop everything (the library is going away)."""
        with self._mutex:
            self._release()

    def __del__(self) -> None:  # a library dropped with a session still locked: free the files
        for fd in (self._main, self._key_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- one attempt ---------------------------------------------------------------

    def _attempt(self, want: Mode, poll: Poll) -> bool:
        if want is None:
            self._release()
            return True
        gate_poll = poll if poll.remaining is None or poll.remaining >= GATE_GRACE else WAIT.start(GATE_GRACE)
        with self._gate(gate_poll) as gated:
            if not gated:
                return False
            if want == EXCLUSIVE:
                return self._take_exclusive()
            return self._take_shared(want[1])

    def _take_exclusive(self) -> bool:
        if self._main is None:
            self._main = self._open("main")
        if self._posix.try_flock(self._main, shared=False):  # also converts our own LOCK_SH
            self._drop_key()
            self.mode = EXCLUSIVE
            return True
        if self.mode is not None:  # a failed conversion may have dropped our LOCK_SH: take it back
            self._posix.try_flock(self._main, shared=True)  # only other sharers hold it (we are gated)
        else:
            self._close_main()
        return False

    def _take_shared(self, key: str | None) -> bool:
        if self.mode is not None and self.mode != EXCLUSIVE and self.mode != ("shared", key):
            self._release()  # another key than ours (cannot happen through ResourceLocks): start over, gated
        if self.mode is None:
            self._main = self._open("main")
            if not self._posix.try_flock(self._main, shared=True):
                self._close_main()
                return False
        else:
            assert self._main is not None
            self._posix.try_flock(self._main, shared=True)  # converts our LOCK_EX; never contended
        mine = f"{self._name}.key.{_digest(key or '')}"
        if self._key_fd is None or self.mode != ("shared", key):
            self._drop_key()
            if self._other_key_live(mine):
                self._undo_shared()
                return False
            self._key_fd = self._open_file(mine)
            self._posix.try_flock(self._key_fd, shared=True)  # no one holds LOCK_EX on key files outside the gate
        self.mode = ("shared", key)
        return True

    def _undo_shared(self) -> None:
        """A shared attempt failed on a live other key: back to what was held before."""
        if self.mode == EXCLUSIVE:
            assert self._main is not None
            self._posix.try_flock(self._main, shared=False)  # we held it exclusively a moment ago, gated
        elif self.mode is None:
            self._close_main()

    def _other_key_live(self, mine: str) -> bool:
        prefix = f"{self._name}.key."
        for entry in os.listdir(self._directory()):
            if not entry.startswith(prefix) or entry == mine:
                continue
            try:
                fd = self._open_file(entry)
            except FileNotFoundError:
                continue
            try:
                if not self._posix.try_flock(fd, shared=False):
                    return True
                os.unlink(os.path.join(self._directory(), entry))  # stale: its holders are gone
            finally:
                os.close(fd)
        return False

    # -- files ------------------------------------------------------------------------

    def _directory(self) -> str:
        if self._dir is None:
            self._dir = runtime_dir()
        return self._dir

    def _open(self, kind: str) -> int:
        return self._open_file(f"{self._name}.{kind}")

    def _open_file(self, name: str) -> int:
        fd: int = os.open(os.path.join(self._directory(), name), self._posix.OPEN_FLAGS, 0o600)
        return fd

    def _gate(self, poll: Poll) -> _Gate:
        return _Gate(self, poll)

    def _drop_key(self) -> None:
        if self._key_fd is not None:
            fd, self._key_fd = self._key_fd, None
            self._free(fd)

    def _close_main(self) -> None:
        if self._main is not None:
            fd, self._main = self._main, None
            self._free(fd)

    def _free(self, fd: int) -> None:
        """Give back ``fd``'s flock and close it."""
        self._posix.unlock(fd)
        os.close(fd)

    def _release(self) -> None:
        self._drop_key()
        self._close_main()
        self.mode = None


class _Gate:
    """``with``: hold the resource's gate file, polling on ``poll``; ``as`` gives whether it was got."""

    def __init__(self, owner: HostLock, poll: Poll) -> None:
        self._owner = owner
        self._poll = poll
        self._fd: int | None = None

    def __enter__(self) -> bool:
        posix = self._owner._posix
        fd = self._owner._open("gate")
        while not posix.try_flock(fd, shared=False):
            if self._poll.expired:
                os.close(fd)
                return False
            self._poll.sleep()
        self._fd = fd
        return True

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            self._owner._free(self._fd)
            self._fd = None
