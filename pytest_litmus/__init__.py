"""pytest-litmus: locked instruments, mock stations and measurement logs for test stations.

Importing the package is cheap: the VISA stack loads only when a station opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_litmus.errors import (
    InstrumentError,
    LimitError,
    LitmusError,
    LockLost,
    ResourceInUse,
    SrqTimeout,
    StationConfigError,
    StationNotFound,
    UnknownRole,
)

if TYPE_CHECKING:
    from pytest_litmus.connection import StaleServerWarning, connect
    from pytest_litmus.holder import StationConnection
    from pytest_litmus.hookspecs import hookimpl
    from pytest_litmus.sharing.joined import JoinedStation
    from pytest_litmus.station import Station

__version__ = "0.1.0"

__all__ = [
    "InstrumentError",
    "JoinedStation",
    "LimitError",
    "LitmusError",
    "LockLost",
    "ResourceInUse",
    "SrqTimeout",
    "StaleServerWarning",
    "Station",
    "StationConfigError",
    "StationConnection",
    "StationNotFound",
    "UnknownRole",
    "connect",
    "hookimpl",
]

_LAZY = {
    "connect": "pytest_litmus.connection",
    "StaleServerWarning": "pytest_litmus.connection",
    "StationConnection": "pytest_litmus.holder",
    "JoinedStation": "pytest_litmus.sharing.joined",
    "Station": "pytest_litmus.station",
    "hookimpl": "pytest_litmus.hookspecs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_litmus' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
