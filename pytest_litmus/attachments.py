"""Attachments: files, texts and numeric series stored beside a session's event file.

:func:`store` writes one attachment under ``<session dir>/attachments/`` and
returns the fields of its ``Attachment`` event. The stored file name is made
here, never taken from the caller: a slug of the name (letters, digits, ``.``,
``_``, ``-``; at most 60 characters), a random token that keeps two attachments
of one name apart, and an extension. So ``../../etc/passwd``, a NUL or a
300-character name stay inside the directory, and the event keeps the name as
given. Files are written atomically (:mod:`pytest_litmus.atomicfile`): a reader
sees a whole attachment or none.

What may be attached:

- ``bytes`` (``bytearray``, ``memoryview``): stored as they are;
- ``str``: a text, stored as UTF-8 (a path is an :class:`os.PathLike`, never a ``str``);
- an :class:`os.PathLike` naming a regular file: copied;
- a numeric series: a list or tuple of real numbers, an array with ``tolist()``
  (NumPy, :class:`array.array`), or a mapping ``{"x": [...], "y": [...]}`` (``x``
  optional, as long as ``y``). Stored as JSON ``{"x": [...] or null, "y": [...]}``,
  and the event says ``series: true``. Values must be finite.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import make_dirs, write_bytes
from pytest_litmus.errors import AttachmentError, AttachmentMissing, AttachmentNotWritten, AttachmentTypeError

__all__ = ["ATTACHMENTS_DIR", "SERIES_MIME", "StoredAttachment", "read_series", "resolve", "store"]

#: The directory, inside a session's directory, that holds its attachments.
ATTACHMENTS_DIR = "attachments"
SERIES_MIME = "application/json"
_SLUG_MAX = 60
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=(\"[^\"\\\n]*\"|[\w.+-]+))*$")


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment on disk: the ``Attachment`` event's own fields."""

    name: str
    path: str  # relative to the session directory, with '/'
    mime: str
    size: int
    sha256: str
    series: bool

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "series": self.series,
        }


def store(session_dir: Path, name: str, data: Any, mime: str | None = None) -> StoredAttachment:
    """Write ``data`` as the attachment ``name`` of the session in ``session_dir``.

    Raises :class:`AttachmentError` (a ``ValueError``) for a bad name, mime type
    or series, or a path that is not a regular file (``FileNotFoundError`` too
    when it does not exist), :class:`AttachmentTypeError` for a value of another
    type, and :class:`AttachmentNotWritten` (an ``OSError``) when the file
    cannot be written: nothing is recorded then.
    """
    if not isinstance(name, str):
        raise AttachmentTypeError(repr(name), "the name must be a string", name)
    if not name.strip():
        raise AttachmentError(name, "the name must not be empty", name)
    if mime is not None and (not isinstance(mime, str) or len(mime) > 255 or not _MIME.match(mime)):
        raise AttachmentError(name, "mime must be a media type such as 'image/png'", mime)
    content, guessed, series, source = _content(name, data)
    mime = mime or guessed
    folder = session_dir / ATTACHMENTS_DIR
    file_name = _file_name(name, source, mime, series)
    target = folder / file_name
    try:
        shared = make_dirs(folder)
        write_bytes(target, content, share=shared)
    except OSError as exc:
        raise AttachmentNotWritten(name, target, exc.strerror or str(exc)) from exc
    return StoredAttachment(
        name=name,
        path=f"{ATTACHMENTS_DIR}/{file_name}",
        mime=mime,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        series=series,
    )


def _content(name: str, data: Any) -> tuple[bytes, str, bool, str | None]:
    """``data`` as bytes, its guessed mime type, whether it is a series, and the source file's name."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), _guess(name) or "application/octet-stream", False, None
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass"), _guess(name) or "text/plain", False, None
    if isinstance(data, os.PathLike):
        path = Path(os.fspath(data))
        return _read_file(name, path), _guess(name) or _guess(path.name) or "application/octet-stream", False, path.name
    return _series_json(name, data), SERIES_MIME, True, None


def _read_file(name: str, path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AttachmentMissing(name, "no such file", os.fspath(path)) from None
    except OSError as exc:
        raise AttachmentError(name, f"cannot read the file ({exc.strerror})", os.fspath(path)) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise AttachmentError(name, f"the path is {what}; attach a regular file", os.fspath(path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AttachmentError(name, f"cannot read the file ({exc.strerror})", os.fspath(path)) from None


def _series_json(name: str, data: Any) -> bytes:
    import json

    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k not in ("x", "y"))
        if unknown or "y" not in data:
            raise AttachmentError(name, "a series mapping has 'y' and optionally 'x', nothing else", sorted(data))
        y = _numbers(name, data["y"], "y")
        x = None if data.get("x") is None else _numbers(name, data["x"], "x")
        if x is not None and len(x) != len(y):
            raise AttachmentError(name, f"x has {len(x)} values and y {len(y)}", f"{len(x)} != {len(y)}")
    else:
        y, x = _numbers(name, data, None), None
    return json.dumps({"x": x, "y": y}, separators=(",", ":")).encode()


def _numbers(name: str, values: Any, axis: str | None) -> list[float | int]:
    if not isinstance(values, (list, tuple)) and callable(getattr(values, "tolist", None)):
        values = values.tolist()
    what = f"series {axis}" if axis else "the value"
    if not isinstance(values, (list, tuple)):
        expected = "bytes, str, a path, or a numeric series (a list of numbers or {'x': [...], 'y': [...]})"
        if axis is None:
            raise AttachmentTypeError(name, f"cannot attach {type(values).__name__}: expected {expected}", values)
        raise AttachmentTypeError(name, f"{what} must be a list of numbers", values)
    out: list[float | int] = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, Real):
            raise AttachmentTypeError(name, f"{what}[{i}] is not a real number", v)
        if isinstance(v, int):
            out.append(int(v))
            continue
        f = float(v)
        if not math.isfinite(f):
            raise AttachmentError(name, f"{what}[{i}] is not finite (JSON cannot hold it)", v)
        out.append(f)
    return out


def _guess(name: str) -> str | None:
    return mimetypes.guess_type(name, strict=False)[0] if _EXTENSION.search(name) else None


def _file_name(name: str, source: str | None, mime: str, series: bool) -> str:
    """A safe, unique file name: slug, random token, extension."""
    stem, ext = os.path.splitext(name)
    if not _EXTENSION.fullmatch(ext):
        stem, ext = name, ""
    if not ext and source is not None:
        ext = os.path.splitext(source)[1] if _EXTENSION.search(source) else ""
    if series:
        ext = ".json"
    elif not ext:
        ext = mimetypes.guess_extension(mime.split(";")[0].strip(), strict=False) or ".bin"
    slug = _UNSAFE.sub("_", stem).strip("._-")[:_SLUG_MAX] or "attachment"
    return f"{slug}-{secrets.token_hex(6)}{ext.lower()}"


def resolve(session_dir: Path, relative: Any) -> Path | None:
    """The file an ``Attachment`` event's ``path`` names, or None if it is not a plain file inside the session.

    Readers use this rather than joining the path themselves: an event file is
    data, and its ``path`` might say ``../../etc/passwd``.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        return None
    base = session_dir.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base / ATTACHMENTS_DIR) or not target.is_file():
        return None
    return target


def read_series(path: Path) -> tuple[list[float] | None, list[float]] | None:
    """``(x, y)`` of a stored series, or None when the file is not one."""
    import json

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("y"), list):
        return None
    y, x = data["y"], data.get("x")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in y)
    if not numeric or (x is not None and (not isinstance(x, list) or len(x) != len(y))):
        return None
    if x is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
        return None
    return x, y
