"""Who this process is, and whether the process a record names still runs.

One module for process identity and liveness: lock holder records, the
instrument server's caller identity, barrier parties and session writers all
use it. Liveness goes through :mod:`psutil` (portable: on Windows
``os.kill(pid, 0)`` would end the process), imported only when a liveness or
start-time question is asked, so importing the plugin stays cheap.

A pid alone is not an identity: pids are reused. A record therefore carries
the process *start time* (``start``, psutil's ``create_time()``, epoch seconds);
a live pid whose start time differs is another process, and the record's
holder is gone.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

__all__ = [
    "START_TOLERANCE",
    "current_user",
    "group_name",
    "holder_alive",
    "identity",
    "pid_alive",
    "process_start",
    "process_uid",
    "this_process",
    "user_name",
    "worker_id",
]

#: Two start times this close (seconds) name the same process. psutil derives the
#: start time from the boot time, which each process reads (and rounds) once.
START_TOLERANCE = 1.0


def current_user() -> str:
    """This process's user name (its uid where there is no passwd entry, as in containers).

    On POSIX the name of the effective uid, not ``$USER``/``$LOGNAME``: a process
    started with ``runuser``, ``setpriv`` or ``sudo -E`` keeps the caller's
    environment, and a holder record must name the user whose files it makes.
    """
    if hasattr(os, "geteuid"):
        return user_name(os.geteuid())
    try:
        import getpass  # Windows only: importing it loads termios on POSIX

        return getpass.getuser()
    except Exception:
        return "unknown"


def user_name(uid: int) -> str:
    """The login name of ``uid``, or the number as text where there is no passwd entry (or no POSIX)."""
    try:
        from pytest_litmus._posix import user_name as lookup
    except ImportError:
        return str(uid)
    return lookup(uid)


def group_name(gid: int) -> str:
    """The name of group ``gid``, or the number as text where there is no group entry (or no POSIX)."""
    try:
        from pytest_litmus._posix import group_name as lookup
    except ImportError:
        return str(gid)
    return lookup(gid)


def worker_id() -> str:
    """The pytest-xdist worker id (``gw1``) of this process, or ``""``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if it is gone or cannot be asked."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def process_uid(pid: int) -> int | None:
    """The effective uid of process ``pid`` on this host, or None if it is gone or cannot be asked."""
    import psutil

    try:
        return int(psutil.Process(pid).uids().effective)
    except (psutil.Error, OSError, ValueError, AttributeError):  # AttributeError: no uids() on Windows
        return None


@functools.lru_cache(maxsize=1)
def _base(pid: int) -> tuple[str, str]:
    return socket.gethostname(), current_user()


def identity() -> dict[str, Any]:
    """This process: ``pid``, ``host``, ``user`` and, under xdist, ``worker`` (no psutil needed)."""
    pid = os.getpid()
    host, user = _base(pid)
    found: dict[str, Any] = {"pid": pid, "host": host, "user": user}
    worker = worker_id()
    if worker:
        found["worker"] = worker
    return found


@functools.lru_cache(maxsize=1)
def _start_of(pid: int) -> float | None:
    return process_start(pid)


def this_process() -> dict[str, Any]:
    """:func:`identity` plus ``start``, this process's start time: what a holder record names.

    Cached per pid, so a forked child gets its own identity.
    """
    found = identity()
    found["start"] = _start_of(found["pid"])
    return found


def describe(record: Mapping[str, Any] | None = None) -> str:
    """``gw1 pid 4242@host`` for a record (default: this process; the thread name when not the main thread)."""
    if record is None:
        record = identity()
        thread = threading.current_thread()
        suffix = "" if thread is threading.main_thread() else f" {thread.name}"
    else:
        suffix = ""
    parts = [str(record.get("worker") or ""), f"pid {record.get('pid', '?')}@{record.get('host', '?')}"]
    return " ".join(p for p in parts if p) + suffix


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; a zombie (exited, not yet reaped) does not."""
    import psutil

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but may not be asked (another user's, on some systems)
        return True


def holder_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process a record (``pid``, ``host``, optional ``start``) names still runs.

    A record from another host counts as alive: it cannot be checked from here.
    A record without a pid is dead. With ``start``, a live pid that started at
    another time is a reused pid, so the holder is gone.
    """
    if record.get("host") != _base(os.getpid())[0]:
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    start = record.get("start")
    if not isinstance(start, (int, float)) or isinstance(start, bool):
        return True
    now = process_start(pid)
    return now is None or abs(now - start) <= START_TOLERANCE
