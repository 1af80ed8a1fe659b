"""``connect()``: a station session for scripts and notebooks, held or joined.

``connect()`` returns a :class:`~pytest_litmus.station.Station`: the holder
(:class:`StationConnection`, which opens, locks and records) or, when it is
pointed at an instrument server, a
:class:`~pytest_litmus.sharing.joined.JoinedStation` into that server's session.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_litmus import settings
from pytest_litmus.dut import MAIN_SLOT
from pytest_litmus.errors import LitmusError, ServerUnavailable
from pytest_litmus.holder import StationConnection
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.sharing.files import ENV_ADDRESS, ServerInfo, find_server_info
from pytest_litmus.station import SESSION_OUTCOMES, SessionOutcome, Station

if TYPE_CHECKING:
    from pytest_litmus.sharing.joined import JoinedStation

__all__ = [
    "SESSION_OUTCOMES",
    "JoinedStation",
    "SessionOutcome",
    "StaleServerWarning",
    "Station",
    "StationConnection",
    "connect",
]


class StaleServerWarning(UserWarning):
    """``$LITMUS_SERVER`` names no live instrument server, and a mock session was opened instead."""


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
    dut: str | None = None,
    dut_part: str | None = None,
    limits: str | os.PathLike[str] | None = None,
) -> Station:
    """A station session for ``station``; nothing is opened until ``start()`` (or ``with``).

    Arguments left None resolve as under pytest (:mod:`pytest_litmus.settings`):
    ``station`` -> ``$LITMUS_STATION`` -> ``default_station`` of ``litmus.yaml``;
    ``mock`` -> ``$LITMUS_MOCK`` -> off; ``data_dir`` -> ``litmus.yaml``
    ``data_dir`` -> ``$LITMUS_HOME`` -> the user data dir; the lock timeout is
    ``$LITMUS_LOCK_TIMEOUT`` -> 0; ``dut`` (the serial of the unit under test)
    -> ``$LITMUS_DUT`` -> the ``litmus_dut`` hook of an installed ``litmus``
    plugin -> none, ``dut_part`` -> ``$LITMUS_DUT_PART``. A serial is checked
    against ``dut_pattern`` before ``start()`` touches anything.
    ``$LITMUS_LOCK_TIMEOUT`` -> 0; ``limits`` (a limits file) -> ``$LITMUS_LIMITS``
    -> the station file's ``limits:`` -> ``litmus.yaml``'s (docs/limits.md).

    ``server="host:port"`` joins the session of that instrument server instead:
    its instruments are the holder's, reached through the server, and events go
    to the holder's log (a :class:`JoinedStation`). Without ``server``,
    ``$LITMUS_SERVER`` (which a holder sets for its children) is joined when it
    serves ``station`` (or ``station`` is None), and a mock session does not join
    a holder of real instruments. A ``$LITMUS_SERVER`` that names no live server
    (its holder ended, or the value is garbage) is ignored with a
    :class:`StaleServerWarning` by a mock session, and a ``ServerUnavailable``
    naming the variable otherwise. See docs/sharing.md.
    """
    hooks = LitmusPluginManager()
    hooks.load_setuptools_entrypoints("litmus")
    info = _server(server, data_dir) if server else _inherited_server(data_dir, mock)
    if info is not None:
        if station is None or station == info.station:
            if mock and not info.mock:
                if server is None:  # an inherited holder of real instruments: a mock session of our own
                    info = None
                else:
                    raise LitmusError(
                        f"instrument server {server} holds the real instruments of {info.station!r}; "
                        "mock=True cannot join it"
                    )
            if info is not None:
                from pytest_litmus.sharing.joined import JoinedStation

                if limits is not None and Path(limits).expanduser().resolve() != Path(info.limits_file):
                    held = info.limits_file or "no limits file"
                    raise LitmusError(
                        f"instrument server {info.address} judges by its holder's limits ({held}); "
                        f"limits={os.fspath(limits)!r} cannot join it"
                    )
                return JoinedStation(info, hooks=hooks)
        elif server is not None:  # an inherited $LITMUS_SERVER of another station is simply not joined
            raise LitmusError(f"instrument server {server} serves station {info.station!r}, not {station!r}")
    resolved = settings.resolve(
        {
            "station": (station, "station="),
            "mock": (mock, "mock="),
            "data_dir": (data_dir, "data_dir="),
            "dut": (dut, "dut="),
            "dut_part": (dut_part, "dut_part="),
            "limits": (limits, "limits="),
        }
    )
    config = resolved.load_station()
    units = resolved.units(config, [MAIN_SLOT], lambda slot: hooks.hook.litmus_dut(station=config.id, slot=slot))
    return StationConnection(
        config,
        data_dir=resolved.data_dir.value,
        mock=resolved.mock.value,
        hooks=hooks,
        lock_timeout=resolved.lock_timeout.value,
        dut=units[MAIN_SLOT],
        locks=resolved.locks.value,
    )


def _server(address: str, data_dir: str | os.PathLike[str] | None) -> ServerInfo:
    try:
        return find_server_info(address, data_dir)
    except ValueError as exc:  # not host:port
        raise ServerUnavailable(address, str(exc)) from None


def _inherited_server(data_dir: str | os.PathLike[str] | None, mock: bool | None) -> ServerInfo | None:
    """The server ``$LITMUS_SERVER`` names, if any; a stale or garbage value is ignored by a mock session."""
    address = os.environ.get(ENV_ADDRESS)
    if not address:
        return None
    try:
        return _server(address, data_dir)
    except ServerUnavailable as exc:
        why = (
            f"${ENV_ADDRESS}={address!r} (inherited from the environment) names no live instrument server: {exc.reason}"
        )
        if mock if mock is not None else settings.resolve_setting("mock").value:
            warnings.warn(
                f"litmus: {why}; ignored, a mock session of its own is opened", StaleServerWarning, stacklevel=3
            )
            return None
        raise ServerUnavailable(address, f"{why}; unset {ENV_ADDRESS} to open the station yourself") from None
