"""Atomic file replacement, and the file modes that let a group of users share a data dir.

:func:`write_bytes` writes to a temporary file beside the target (same directory,
so the same file system), which then replaces the target with :func:`os.replace`:
a reader sees the old content or the new, never a torn write. The temporary name
carries the pid and thread id, so concurrent writers of one path never share a
temporary file. Nothing is fsync-ed: this guards against torn reads and crashed
writers, not against power loss.

Sharing (docs/locking.md, "Several users on one station"): a directory with the
set-group-ID bit is the administrator's sign that its group shares it. There,
directories this package makes get ``g+rwx`` and the setgid bit (``2775`` under
the usual umask 022) and files get ``g+rw`` (``0664``), whatever the umask says
about the group; what it says about others is kept. Outside setgid directories
the umask alone decides, as for any other program.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
from typing import Any

__all__ = ["GROUP_DIR_BITS", "GROUP_FILE_BITS", "is_shared_dir", "make_dirs", "share_fd", "write_bytes", "write_json"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
#: Added to a directory made inside a setgid directory: the group may use it, and its files inherit the group.
GROUP_DIR_BITS = stat.S_ISGID | stat.S_IRWXG
#: Added to a file made inside a setgid directory: the group may read and write it.
GROUP_FILE_BITS = stat.S_IRGRP | stat.S_IWGRP


def is_shared_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory with the set-group-ID bit (shared by its group)."""
    try:
        return bool(os.stat(path).st_mode & stat.S_ISGID)
    except OSError:
        return False


def make_dirs(path: str | os.PathLike[str], bits: int = GROUP_DIR_BITS) -> bool:
    """``mkdir -p path``; True if ``path`` is a shared (setgid) directory.

    A directory made inside a setgid directory gets ``bits`` (``path`` itself)
    or :data:`GROUP_DIR_BITS` (the directories above it) added to the mode the
    umask gives it: ``2775`` under umask 022. A directory only its maker writes
    into, such as one session's, may ask for ``S_ISGID | S_IRGRP | S_IXGRP``
    (``2755``). Existing directories are left alone. Permission errors
    propagate as :class:`PermissionError` (callers say whose directory refused).
    """
    target = os.path.abspath(os.fspath(path))
    try:
        os.mkdir(target, 0o777)
    except FileExistsError:
        return is_shared_dir(target)
    except FileNotFoundError:
        parent = os.path.dirname(target)
        if parent == target:
            raise
        make_dirs(parent)
        try:
            os.mkdir(target, 0o777)
        except FileExistsError:
            return is_shared_dir(target)
    if not is_shared_dir(os.path.dirname(target)):
        return is_shared_dir(target)
    mode = stat.S_IMODE(os.stat(target).st_mode)
    if mode & bits != bits:
        os.chmod(target, mode | bits)
    return True


def share_fd(fd: int, bits: int = GROUP_FILE_BITS) -> None:
    """Add ``bits`` (group read and write) to a file this process just made in a shared directory."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & bits != bits:
        os.fchmod(fd, mode | bits)


def _reopen_tmp(tmp: str, head: str, name: str, mode: int) -> tuple[str, int]:
    """The temporary file ``tmp`` was left by a crashed writer: remove it, or take another name."""
    try:
        os.unlink(tmp)
    except PermissionError:  # another user's, in a sticky directory
        tmp = os.path.join(head, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    return tmp, os.open(tmp, _FLAGS, mode)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o666, share: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically; a new file gets ``mode`` (less the umask).

    ``share``: the directory is shared (:func:`is_shared_dir`), so the file
    also gets :data:`GROUP_FILE_BITS`.
    """
    target = os.fspath(path)
    head, name = os.path.split(target)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _FLAGS, mode)
    except FileExistsError:  # left by a crashed writer of this pid and thread
        tmp, fd = _reopen_tmp(tmp, head, name, mode)
    try:
        try:
            if share:
                share_fd(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(
    path: str | os.PathLike[str], data: Any, *, mode: int = 0o666, indent: int | None = None, share: bool = False
) -> None:
    """Replace ``path`` with ``data`` as JSON (keys sorted) atomically (``share``: as :func:`write_bytes`)."""
    write_bytes(path, json.dumps(data, sort_keys=True, indent=indent).encode(), mode=mode, share=share)
