"""``connect()``: a station session for scripts and notebooks, held or joined.

``connect()`` returns a :class:`~pytest_litmus.station.Station`: the holder
(:class:`StationConnection`, which opens, locks and records) or, when it is
pointed at an instrument server, a
:class:`~pytest_litmus.sharing.joined.JoinedStation` into that server's session.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pytest_litmus import settings
from pytest_litmus.errors import LitmusError
from pytest_litmus.holder import StationConnection
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.sharing.files import ENV_ADDRESS, find_server_info
from pytest_litmus.station import SESSION_OUTCOMES, SessionOutcome, Station

if TYPE_CHECKING:
    from pytest_litmus.sharing.joined import JoinedStation

__all__ = ["SESSION_OUTCOMES", "JoinedStation", "SessionOutcome", "Station", "StationConnection", "connect"]


def __getattr__(name: str) -> Any:
    """``JoinedStation`` on first use: a run that joins no server does not load the client."""
    if name == "JoinedStation":
        from pytest_litmus.sharing.joined import JoinedStation

        return JoinedStation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def connect(
    station: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mock: bool | None = None,
    server: str | None = None,
) -> Station:
    """A station session for ``station``; nothing is opened until ``start()`` (or ``with``).

    Arguments left None resolve as under pytest (:mod:`pytest_litmus.settings`):
    ``station`` -> ``$LITMUS_STATION`` -> ``default_station`` of ``litmus.yaml``;
    ``mock`` -> ``$LITMUS_MOCK`` -> off; ``data_dir`` -> ``litmus.yaml``
    ``data_dir`` -> ``$LITMUS_HOME`` -> the user data dir; the lock timeout is
    ``$LITMUS_LOCK_TIMEOUT`` -> 0.

    ``server="host:port"`` joins the session of that instrument server instead:
    its instruments are the holder's, reached through the server, and events go
    to the holder's log (a :class:`JoinedStation`). Without ``server``,
    ``$LITMUS_SERVER`` (which a holder sets for its children) is joined when it
    serves ``station`` (or ``station`` is None). See docs/sharing.md.
    """
    hooks = LitmusPluginManager()
    hooks.load_setuptools_entrypoints("litmus")
    address = server or os.environ.get(ENV_ADDRESS)
    if address:
        info = find_server_info(address, data_dir)
        if station is None or station == info.station:
            if mock and not info.mock:
                raise LitmusError(
                    f"instrument server {address} holds the real instruments of {info.station!r}; mock=True cannot join it"
                )
            from pytest_litmus.sharing.joined import JoinedStation

            return JoinedStation(info, hooks=hooks)
        if server is not None:  # an inherited $LITMUS_SERVER of another station is simply not joined
            raise LitmusError(f"instrument server {address} serves station {info.station!r}, not {station!r}")
    resolved = settings.resolve(
        {"station": (station, "station="), "mock": (mock, "mock="), "data_dir": (data_dir, "data_dir=")}
    )
    return StationConnection(
        resolved.load_station(),
        data_dir=resolved.data_dir.value,
        mock=resolved.mock.value,
        hooks=hooks,
        lock_timeout=resolved.lock_timeout.value,
    )
