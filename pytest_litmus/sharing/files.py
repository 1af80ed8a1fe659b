"""Connection files: where an instrument server is, whose it is, and its key.

A server writes ``<data_dir>/servers/<session>-<port>.json`` (mode 0600, as
Jupyter keeps kernel files); a client of the same user and data dir finds the
key from the address alone, or from the ``LITMUS_SERVER`` /
``LITMUS_SERVER_FILE`` variables a holder gives its children.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_litmus.atomicfile import write_json
from pytest_litmus.errors import ServerUnavailable
from pytest_litmus.processes import pid_alive

__all__ = [
    "ENV_ADDRESS",
    "ENV_FILE",
    "SERVERS_DIR",
    "ServerInfo",
    "find_server",
    "find_server_info",
    "list_servers",
    "same_address",
    "split_address",
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
    path: Path | None = field(default=None, compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> ServerInfo:
        data = json.loads(path.read_text())
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


def list_servers(data_dir: str | os.PathLike[str] | None = None) -> list[ServerInfo]:
    """Servers with a connection file in the data dir whose process is alive (stale files are removed)."""
    found: list[ServerInfo] = []
    here = socket.gethostname()
    for path in sorted(servers_dir(data_dir).glob("*.json")):
        try:
            info = ServerInfo.load(path)
        except (OSError, ValueError, TypeError):
            continue
        if info.hostname == here and not pid_alive(info.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(info)
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
    for info in list_servers(data_dir):
        if same_address(info.address, address):
            return info
    raise ServerUnavailable(
        address, f"no connection file for it in {servers_dir(data_dir)} (the key is there: use the server's data dir)"
    )


def find_server_info(address: str | None = None, data_dir: str | os.PathLike[str] | None = None) -> ServerInfo:
    """The connection file of the server at ``address`` (default ``$LITMUS_SERVER``).

    ``$LITMUS_SERVER_FILE`` is used when it names that server, else the
    connection files in ``data_dir`` (resolved as ``connect()`` does).
    """
    address = address or os.environ.get(ENV_ADDRESS)
    if not address:
        raise ServerUnavailable("(none)", f"no address given and ${ENV_ADDRESS} is not set")
    env_file = os.environ.get(ENV_FILE)
    if env_file:
        with contextlib.suppress(OSError, ValueError, TypeError):
            info = ServerInfo.load(Path(env_file))
            if same_address(info.address, address):
                return info
    return find_server(address, data_dir)
