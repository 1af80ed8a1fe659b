"""Atomic file replacement: a reader sees the old content or the new, never a torn write.

The data goes to a temporary file beside the target (same directory, so the
same file system), which then replaces the target with :func:`os.replace`.
The temporary name carries the pid and thread id, so concurrent writers of one
path never share a temporary file. Nothing is fsync-ed: this guards against
torn reads and crashed writers, not against power loss.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

__all__ = ["write_bytes", "write_json"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` atomically; a new file gets ``mode`` (less the umask)."""
    target = os.fspath(path)
    head, name = os.path.split(target)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _FLAGS, mode)
    except FileExistsError:  # left by a crashed writer of this pid and thread
        os.unlink(tmp)
        fd = os.open(tmp, _FLAGS, mode)
    try:
        try:
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


def write_json(path: str | os.PathLike[str], data: Any, *, mode: int = 0o666, indent: int | None = None) -> None:
    """Replace ``path`` with ``data`` as JSON (keys sorted) atomically."""
    write_bytes(path, json.dumps(data, sort_keys=True, indent=indent).encode(), mode=mode)
