"""Sharing a held station with other processes: connection files, the wire, server, clients.

Everything here depends on the :class:`~pytest_litmus.station.Station`
protocol, never on the holder's class: :func:`serve` serves any started
station; :class:`JoinedStation` is the other implementation of the protocol.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_litmus.errors import RemoteCallError, ServerUnavailable
    from pytest_litmus.sharing.client import (
        RemoteInstrument,
        RemoteSrqWaiter,
        RemoteStation,
        connect_remote,
        remote_role,
    )
    from pytest_litmus.sharing.files import (
        ENV_ADDRESS,
        ENV_FILE,
        SERVERS_DIR,
        ConnectionFileWarning,
        ServerInfo,
        find_server,
        find_server_info,
        list_servers,
        scan_servers,
        trust_problem,
    )
    from pytest_litmus.sharing.joined import JoinedStation
    from pytest_litmus.sharing.server import DEFAULT_MAX_CLIENTS, InstrumentServer, serve
    from pytest_litmus.sharing.wire import CALL_MARGIN, CALLER_KEYS, HANDSHAKE_TIMEOUT, MAX_HANDSHAKES, identity

# Imported on first use (PEP 562): a run that neither serves nor joins (most runs) loads only
# ``sharing.files``, not the client, server, pickle and multiprocessing.
_HOME = {
    "RemoteCallError": "pytest_litmus.errors",
    "ServerUnavailable": "pytest_litmus.errors",
    **dict.fromkeys(
        ("RemoteInstrument", "RemoteSrqWaiter", "RemoteStation", "connect_remote", "remote_role"),
        "pytest_litmus.sharing.client",
    ),
    **dict.fromkeys(
        (
            "ENV_ADDRESS",
            "ENV_FILE",
            "SERVERS_DIR",
            "ConnectionFileWarning",
            "ServerInfo",
            "find_server",
            "find_server_info",
            "list_servers",
            "scan_servers",
            "trust_problem",
        ),
        "pytest_litmus.sharing.files",
    ),
    "JoinedStation": "pytest_litmus.sharing.joined",
    **dict.fromkeys(("DEFAULT_MAX_CLIENTS", "InstrumentServer", "serve"), "pytest_litmus.sharing.server"),
    **dict.fromkeys(
        ("CALL_MARGIN", "CALLER_KEYS", "HANDSHAKE_TIMEOUT", "MAX_HANDSHAKES", "identity"), "pytest_litmus.sharing.wire"
    ),
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CALLER_KEYS",
    "CALL_MARGIN",
    "DEFAULT_MAX_CLIENTS",
    "ENV_ADDRESS",
    "ENV_FILE",
    "HANDSHAKE_TIMEOUT",
    "MAX_HANDSHAKES",
    "SERVERS_DIR",
    "ConnectionFileWarning",
    "InstrumentServer",
    "JoinedStation",
    "RemoteCallError",
    "RemoteInstrument",
    "RemoteSrqWaiter",
    "RemoteStation",
    "ServerInfo",
    "ServerUnavailable",
    "connect_remote",
    "find_server",
    "find_server_info",
    "identity",
    "list_servers",
    "remote_role",
    "scan_servers",
    "serve",
    "trust_problem",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
