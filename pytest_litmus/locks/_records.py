"""Lock file names and the holder records beside them, under ``<data_dir>/locks/``.

One lock file per resource, ``<key>.lock``, named by :func:`lock_key`; beside
it one JSON record per holder, ``<key>.<token>.json`` (pid, host, user, start,
session, station, role, test, since, mode, kind, and the lock file's inode).
Records say who holds a lock but never decide who may take it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from pytest_litmus.atomicfile import write_json
from pytest_litmus.errors import CorruptFile, InvalidName
from pytest_litmus.processes import holder_alive
from pytest_litmus.visaname import resource_key

__all__ = [
    "KEY_PATTERN",
    "LOCKS_DIR",
    "LOCK_SUFFIX",
    "MAX_NAME",
    "RECORD_SUFFIX",
    "LockFiles",
    "check_lock_name",
    "damaged_records",
    "lock_key",
    "locks_dir",
]

LOCKS_DIR = "locks"
LOCK_SUFFIX = ".lock"
RECORD_SUFFIX = ".json"
#: What a lock key looks like (:func:`lock_key` makes at most 73 characters); only such a name is a file name.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")
#: The longest lock key or resource address accepted from a user (and NAME_MAX on Linux).
MAX_NAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def locks_dir(data_dir: str | os.PathLike[str]) -> Path:
    """``<data_dir>/locks``."""
    return Path(data_dir) / LOCKS_DIR


@functools.lru_cache(maxsize=256)
def lock_key(resource: str) -> str:
    """A file-name-safe key for a resource address: readable text plus a short hash of its canonical form."""
    canonical = resource_key(resource)  # GPIB::17::INSTR and gpib0::17::INSTR share one lock
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", canonical).strip("_")[:60] or "resource"
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return f"{text}-{digest}"


def check_lock_name(name: str) -> str:
    """``name`` if it may name a lock (a resource address or a lock key as listed), else :class:`InvalidName`.

    Checked before any file operation. Only a name matching :data:`KEY_PATTERN`
    is ever used as a file name; anything else is hashed by :func:`lock_key`. Even
    so, what cannot be either is refused rather than looked up: empty or overlong
    names, control characters (NUL), ``.``/``..``, and path separators unless the
    whole name is a VISA address (``ASRL/dev/ttyUSB0::INSTR`` is one; ``../x``
    and ``/etc/passwd`` are not).
    """
    what = "lock key or resource"
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(what, str(name), "empty")
    if len(name) > MAX_NAME:
        raise InvalidName(what, name, f"longer than {MAX_NAME} characters")
    if _CONTROL.search(name):
        raise InvalidName(what, name, "contains a control character (NUL, newline, ...)")
    if name.strip(".") == "":
        raise InvalidName(what, name, "not a name")
    if ("/" in name or "\\" in name) and not _is_visa_name(name):
        raise InvalidName(what, name, "contains a path separator and is not a VISA resource address")
    return name


def _is_visa_name(name: str) -> bool:
    try:
        from pyvisa import rname

        rname.parse_resource_name(name.strip())
    except Exception:
        return False
    return True


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):  # gone, or not ours
        return None
    return data if isinstance(data, dict) else None


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_iso(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


#: What every holder record has, and of which type (a record is whole: it is written by rename).
_RECORD_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pid": (_is_int, "an integer"),
    "host": (lambda v: isinstance(v, str), "a string"),
    "resource": (lambda v: isinstance(v, str), "a string"),
    "mode": (lambda v: v in ("exclusive", "shared"), "exclusive or shared"),
    "since": (_is_iso, "an ISO time"),
    "inode": (_is_int, "an integer"),
    "token": (lambda v: isinstance(v, str), "a string"),
}


def record_problem(path: str) -> str | None:
    """What is wrong with the holder record at ``path`` (unreadable, not JSON, a field of the wrong type), or None."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:  # its holder just left
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except (ValueError, RecursionError):
        return "not JSON" if raw.strip() else "empty file"
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for key, (ok, expected) in _RECORD_FIELDS.items():
        if not ok(data.get(key)):
            return f"{key!r} must be {expected}, got {data.get(key)!r}"[:160]
    return None


def damaged_records(data_dir: str | os.PathLike[str]) -> list[CorruptFile]:
    """Damaged or unreadable holder records under ``<data_dir>/locks/``, each as a :class:`CorruptFile` saying why."""
    folder = os.fspath(locks_dir(data_dir))
    names = sorted(n for n in list_folder(folder, "list the holder records in") if n.endswith(RECORD_SUFFIX))
    found = []
    for name in names:
        problem = record_problem(os.path.join(folder, name))
        if problem is not None:
            found.append(CorruptFile(os.path.join(folder, name), f"damaged holder record: {problem}"))
    return found


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def try_unlink(path: str) -> bool:
    """Remove ``path`` if we may: False when the file system refuses (another user's file in a sticky directory)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except PermissionError:
        return False
    return True


def inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def list_folder(folder: str, doing: str) -> list[str]:
    """The names in ``folder`` (none if it does not exist); :class:`AccessDenied` saying what was being done."""
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
    except PermissionError:
        from pytest_litmus.locks._perms import denied

        raise denied(folder, doing, "r") from None


class LockFiles(NamedTuple):
    """The files of one lock, as plain strings (pathlib costs more than the syscalls here)."""

    folder: str
    key: str
    #: The folder is shared by a group (setgid): files made here get group read and write.
    shared: bool = False

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str], key: str) -> LockFiles:
        return cls(os.path.join(os.fspath(data_dir), LOCKS_DIR), key)

    @property
    def lock(self) -> str:
        return os.path.join(self.folder, f"{self.key}{LOCK_SUFFIX}")

    def record(self, token: object) -> str:
        return os.path.join(self.folder, f"{self.key}.{token}{RECORD_SUFFIX}")

    def record_paths(self) -> list[str]:
        """Paths of every holder record of this lock."""
        prefix = f"{self.key}."
        names = list_folder(self.folder, "list the holder records in")
        return [os.path.join(self.folder, n) for n in names if n.startswith(prefix) and n.endswith(RECORD_SUFFIX)]

    def records(self) -> list[dict[str, Any]]:
        """Every holder record of the lock, oldest first."""
        found = [r for r in map(read_json, self.record_paths()) if r is not None]
        return sorted(found, key=lambda r: str(r.get("since", "")))

    def live(self, lock_inode: int | None) -> list[dict[str, Any]]:
        """Records of live holders of the lock file's current inode (a forced-out holder's is not one)."""
        return [r for r in self.records() if holder_alive(r) and (lock_inode is None or r.get("inode") == lock_inode)]

    def holders(self) -> list[dict[str, Any]]:
        """Live holders of the lock file as it is now."""
        return self.live(inode(self.lock))

    def write_record(self, record: dict[str, Any]) -> None:
        write_json(self.record(record["token"]), record, share=self.shared)

    def clear_records(self) -> list[str]:
        """Remove every record we may; the paths of those the file system kept (another user's, sticky dir)."""
        return [path for path in self.record_paths() if not try_unlink(path)]

    def resource_name(self, records: list[dict[str, Any]]) -> str:
        """The address from the holder records, else from inside the lock file, else the key."""
        if records:
            return str(records[0].get("resource", self.key))
        try:
            return Path(self.lock).read_text(encoding="utf-8", errors="replace").strip() or self.key
        except OSError:
            return self.key
