"""The one POSIX-only module: ``flock`` on descriptors, a socket receive timeout, user and group names.

Everything else in the package imports this lazily, where it is needed, so
importing ``pytest_litmus`` (and its lock, barrier and follow modules) works on
systems without :mod:`fcntl`; see :func:`pytest_litmus.locks._host.platform`.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import socket
import struct

__all__ = ["OPEN_FLAGS", "READ_FLAGS", "group_name", "set_recv_timeout", "try_flock", "unlock", "user_name"]

_CONTENTION = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
#: Lock files: read-write, created if missing, never a symlink, not inherited over exec.
OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
#: Another user's lock file: flock needs no write access.
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


def try_flock(fd: int, *, shared: bool) -> bool:
    """One non-blocking ``flock`` (``LOCK_SH`` or ``LOCK_EX``); False on contention.

    The exclusive lock is the one :class:`filelock.FileLock` takes, so a plain
    ``FileLock`` on one of our lock files contends with us.
    """
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENTION:
            return False
        raise
    return True


def unlock(fd: int) -> None:
    """Drop this descriptor's ``flock``."""
    fcntl.flock(fd, fcntl.LOCK_UN)


def set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound blocking reads on ``sock`` (0: unbounded) without making it non-blocking (``SO_RCVTIMEO``)."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def user_name(uid: int) -> str:
    """The login name of ``uid``, or the number as text where there is no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """The name of group ``gid``, or the number as text where there is no group entry."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
