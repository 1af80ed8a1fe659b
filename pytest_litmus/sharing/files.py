"""Connection files: where an instrument server is, whose it is, and its key.

A server writes ``<data_dir>/servers/<session>-<port>.json`` (mode 0600, as
Jupyter keeps kernel files); a client of the same user and data dir finds the
key from the address alone, or from the ``LITMUS_SERVER`` /
``LITMUS_SERVER_FILE`` variables a holder gives its children.

A client trusts a connection file only when it and its directory belong to
this user (or root) and nobody else can write them: whoever can plant a file
can name a server of theirs, whose replies the client would unpickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_litmus.atomicfile import write_json
from pytest_litmus.errors import ServerUnavailable
from pytest_litmus.processes import pid_alive

__all__ = [
    "ENV_ADDRESS",
    "ENV_FILE",
    "SERVERS_DIR",
    "ConnectionFileWarning",
    "Refused",
    "ServerInfo",
    "find_server",
    "find_server_info",
    "list_servers",
    "same_address",
    "scan_servers",
    "split_address",
    "trust_problem",
]

SERVERS_DIR = "servers"
#: ``host:port`` of the server a process should use (set by the holder for its children).
ENV_ADDRESS = "LITMUS_SERVER"
#: Path of that server's connection file (so a child needs no data dir to find the key).
ENV_FILE = "LITMUS_SERVER_FILE"


@dataclass(frozen=True)
class ServerInfo:
    """What a connection file holds: where a server is, whose it is, and its key."""

    host: str
    port: int
    pid: int
    session: str
    station: str
    roles: list[str]
    key: str
    user: str = ""
    #: The machine the server process runs on (stale files are judged only there).
    hostname: str = ""
    started: float = 0.0
    #: The holder's data dir (its session's events are there), station file and mock flag.
    data_dir: str = ""
    station_file: str = ""
    mock: bool = False
    #: The holder's limits file and its SHA-256 ("": none), so joined processes judge by the same table.
    limits_file: str = ""
    limits_sha256: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> ServerInfo:
        """Read a connection file; :class:`ServerUnavailable` if it is not one to trust (see :func:`trust_problem`)."""
        try:
            text = _read_trusted(Path(path))
        except _Untrusted as exc:
            raise ServerUnavailable("(unknown)", f"connection file {path} refused: {exc}") from None
        return cls._parse(text, Path(path))

    @classmethod
    def _parse(cls, text: str, path: Path) -> ServerInfo:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        data.pop("address", None)
        return cls(**data, path=path)

    def public(self) -> dict[str, object]:
        """The fields a server tells its clients: all but the key and the file path."""
        return {k: v for k, v in asdict(self).items() if k not in ("key", "path")}

    def write(self, directory: Path) -> Path:
        """Write the file (mode 0600, atomically) into ``directory``; returns its path."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{self.session}-{self.port}.json"
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        write_json(path, {"address": self.address, **data}, mode=0o600, indent=1)
        return path


def servers_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``<data_dir>/servers`` (the data dir resolved as ``connect()`` does)."""
    from pytest_litmus.settings import resolve_data_dir

    return resolve_data_dir(data_dir) / SERVERS_DIR


class ConnectionFileWarning(UserWarning):
    """A connection file was skipped because it is not one to trust (its path and why are in the message)."""


class _Untrusted(Exception):
    """A connection file that must not be read; ``str`` says why."""


@dataclass(frozen=True)
class Refused:
    """A connection file skipped by :func:`scan_servers`, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def _problem(st: os.stat_result, what: str) -> str | None:
    uid = os.getuid()  # type: ignore[attr-defined,unused-ignore]  # POSIX only; callers check
    if st.st_uid not in (uid, 0):
        return f"{what} owned by uid {st.st_uid}, not you (uid {uid}) or root"
    writers = [who for bit, who in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if st.st_mode & bit]
    if writers and not (what != "file" and st.st_mode & stat.S_ISVTX):  # sticky: others cannot replace ours
        return f"{what} mode {stat.S_IMODE(st.st_mode):04o}: writable by {' and '.join(writers)}"
    return None


def trust_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the connection file at ``path`` must not be trusted, or None when it may be.

    Trusted: a regular file owned by this user or root, writable by neither
    group nor others, in a directory of the same owners that only its owner
    can write (a world-writable directory with the sticky bit, like ``/tmp``,
    is fine: others cannot replace a file of ours there). Symlinks are
    followed and their target is judged. Windows has no such modes: None.
    """
    if not hasattr(os, "getuid"):
        return None
    real = os.path.realpath(path)
    st = os.stat(real)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return _problem(st, "file") or _problem(os.stat(os.path.dirname(real)), f"its directory {os.path.dirname(real)}")


def _read_trusted(path: Path) -> str:
    """The text of a connection file that passes :func:`trust_problem`; :class:`_Untrusted` if not."""
    problem = trust_problem(path)
    if problem:
        raise _Untrusted(problem)
    real = os.path.realpath(path)
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, encoding="utf-8") as file:
        if hasattr(os, "getuid"):  # the file judged is the file read, not one swapped in since
            st, now = os.stat(real), os.fstat(file.fileno())
            if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino) or _problem(now, "file"):
                raise _Untrusted("replaced while being read")
        return file.read()


def scan_servers(data_dir: str | os.PathLike[str] | None = None) -> tuple[list[ServerInfo], list[Refused]]:
    """Live servers with a trusted connection file in the data dir, and the files refused.

    Files of servers that died on this host are removed; unreadable or
    malformed files are skipped silently, untrusted ones are returned as
    :class:`Refused` (and never read).
    """
    found: list[ServerInfo] = []
    refused: list[Refused] = []
    here = socket.gethostname()
    for path in sorted(servers_dir(data_dir).glob("*.json")):
        try:
            info = ServerInfo._parse(_read_trusted(path), path)
        except _Untrusted as exc:
            refused.append(Refused(path, str(exc)))
            continue
        except (OSError, ValueError, TypeError):
            continue
        if info.hostname == here and not pid_alive(info.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(info)
    return found, refused


def list_servers(data_dir: str | os.PathLike[str] | None = None) -> list[ServerInfo]:
    """Servers with a trusted connection file in the data dir whose process is alive (stale files are removed).

    An untrusted file is skipped with a :class:`ConnectionFileWarning` naming it and why.
    """
    found, refused = scan_servers(data_dir)
    for skipped in refused:
        warnings.warn(f"litmus: skipped connection file {skipped}", ConnectionFileWarning, stacklevel=2)
    return found


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` as (host, port); an empty host is 127.0.0.1."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"instrument server address must be host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


def same_address(a: str, b: str) -> bool:
    """Whether two ``host:port`` addresses name the same server (loopback spellings agree)."""
    loopback = {"127.0.0.1", "localhost", ""}
    (ha, pa), (hb, pb) = split_address(a), split_address(b)
    return pa == pb and (ha == hb or (ha in loopback and hb in loopback))


def find_server(address: str, data_dir: str | os.PathLike[str] | None = None) -> ServerInfo:
    """The live server at ``address`` from its connection file in the data dir."""
    split_address(address)
    found, refused = scan_servers(data_dir)
    for info in found:
        if same_address(info.address, address):
            return info
    skipped = f"; refused as untrusted: {', '.join(map(str, refused))}" if refused else ""
    raise ServerUnavailable(
        address,
        f"no connection file for it in {servers_dir(data_dir)} (the key is there: use the server's data dir){skipped}",
    )


def find_server_info(address: str | None = None, data_dir: str | os.PathLike[str] | None = None) -> ServerInfo:
    """The connection file of the server at ``address`` (default ``$LITMUS_SERVER``).

    ``$LITMUS_SERVER_FILE`` is used when it names that server, else the
    connection files in ``data_dir`` (resolved as ``connect()`` does). An
    untrusted ``$LITMUS_SERVER_FILE`` raises :class:`ServerUnavailable` naming
    it and why, rather than falling back.
    """
    address = address or os.environ.get(ENV_ADDRESS)
    if not address:
        raise ServerUnavailable("(none)", f"no address given and ${ENV_ADDRESS} is not set")
    env_file = os.environ.get(ENV_FILE)
    if env_file:
        try:
            info = ServerInfo._parse(_read_trusted(Path(env_file)), Path(env_file))
        except _Untrusted as exc:
            raise ServerUnavailable(address, f"${ENV_FILE} {env_file} refused: {exc}") from None
        except (OSError, ValueError, TypeError):
            pass
        else:
            if same_address(info.address, address):
                return info
    return find_server(address, data_dir)
