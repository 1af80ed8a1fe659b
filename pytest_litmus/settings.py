"""Settings without pytest: each resolved to a value and where it came from.

Every setting has one help text, one parser and these doors, tried in order:

1. an explicit value: a ``connect()`` argument, or a pytest option (``--station``);
2. its environment variable (``LITMUS_STATION``);
3. its pytest ini key (``litmus_station``; under pytest only), then ``litmus.yaml``;
4. its default.

The data dir keeps its documented order, ``litmus.yaml`` before ``$LITMUS_HOME``
(docs/stations.md): a project that names its data dir shares its lock files
whatever the user's environment says. A bad value is a
:class:`~pytest_litmus.errors.StationConfigError` naming its door (option,
environment variable, ini file and key, ``litmus.yaml`` and key).

``connect()`` and the plugin both call :func:`resolve`, then
:meth:`Settings.load_station`: one resolution path.

Why this module is over 500 lines: it is the one table of settings (help, parser, doors) and
the one resolver over it; a setting's parts are kept together so that adding one touches one place.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from pytest_litmus.config import (
    MAX_TIMEOUT_MS,
    ProjectConfig,
    StationConfig,
    check_simulation,
    check_station_id,
    find_project_config,
    find_station_file,
    load_station_file,
)
from pytest_litmus.dburl import FLEET_EXPECTED, LOCKS_EXPECTED, check_locks, is_postgres_url
from pytest_litmus.dut import Dut, SerialsMismatch, check_part, parse_serials, resolve_units
from pytest_litmus.errors import StationConfigError
from pytest_litmus.limits import LimitsRef, LimitsTable, load_limits

__all__ = [
    "SETTINGS",
    "IniFile",
    "Resolved",
    "Setting",
    "Settings",
    "check_data_dir",
    "dut_pattern",
    "load_station",
    "resolve",
    "resolve_data_dir",
]

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
#: The longest finite lock wait, in seconds: VISA's longest timeout (about 49 days).
MAX_LOCK_TIMEOUT = MAX_TIMEOUT_MS / 1000
_TIMEOUT = f"seconds >= 0 and at most {MAX_LOCK_TIMEOUT:.0f} (about 49 days), or 'none' to wait forever"
_NO_STATION = "a station id: pass station=/--station, set LITMUS_STATION, litmus_station in the ini file, or default_station in litmus.yaml"


# --------------------------------------------------------------------------- parsers


def parse_bool(value: object) -> bool:
    """``1 true yes on`` / ``0 false no off`` (any case), or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("1, true, yes, on or 0, false, no, off")


def parse_timeout(value: object) -> float | None:
    """Seconds >= 0, or ``none`` / ``inf`` for waiting forever."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if text in ("none", "inf", "infinite", "forever"):
            return None
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(_TIMEOUT) from None
    if math.isinf(seconds) and seconds > 0:
        return None
    if not 0 <= seconds <= MAX_LOCK_TIMEOUT:  # NaN fails too
        raise ValueError(_TIMEOUT)
    return seconds


def parse_station(value: object) -> str:
    """A plain station name."""
    if not isinstance(value, str):
        raise ValueError("a station id (a string)")
    try:
        return check_station_id(value.strip())
    except StationConfigError as exc:
        raise ValueError(exc.expected) from None


def parse_path(value: object) -> Path:
    """A directory path, ``~`` expanded, made absolute."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a directory path")
    return Path(text.strip()).expanduser().resolve()


def parse_file(value: object) -> Path:
    """A file path, ``~`` expanded (a relative one is taken from where the run starts, or the ini file's folder)."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a file path")
    return Path(text.strip()).expanduser()


def parse_locks(value: object) -> str:
    """``host`` or a ``postgresql://`` URL."""
    if not isinstance(value, str) or check_locks(value) is not None:
        raise ValueError(LOCKS_EXPECTED)
    return value.strip()


def parse_fleet(value: object) -> str:
    """A ``postgresql://`` URL."""
    if not isinstance(value, str) or not is_postgres_url(value):
        raise ValueError(FLEET_EXPECTED)
    return value.strip()


# --------------------------------------------------------------------------- the table


class Setting(NamedTuple):
    """One setting: its name, doors, help text, parser and default."""

    name: str
    option: str
    env: str | None
    help: str
    parse: Callable[[object], Any]
    default: Any = None
    flag: bool = False
    metavar: str | None = None
    #: Its key in ``litmus.yaml``, if it has one.
    project_key: str | None = None

    @property
    def dest(self) -> str:
        """The pytest option's ``dest``."""
        return f"litmus_{self.name}"

    @property
    def ini(self) -> str:
        """The pytest ini key."""
        return f"litmus_{self.name}"

    def parse_from(self, value: object, door: str) -> Any:
        """``value`` parsed; a bad one raises :class:`StationConfigError` naming ``door``."""
        try:
            return self.parse(value)
        except ValueError as exc:
            raise StationConfigError(door, self.name, str(exc), value) from None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "station",
        "--station",
        "LITMUS_STATION",
        "station id: stations/<ID>.yaml (default: default_station in litmus.yaml)",
        parse_station,
        metavar="ID",
        project_key="default_station",
    ),
    Setting(
        "mock",
        "--mock",
        "LITMUS_MOCK",
        "run on the station's simulated instruments (no hardware, no host locks)",
        parse_bool,
        default=False,
        flag=True,
    ),
    Setting(
        "data_dir",
        "--litmus-data-dir",
        "LITMUS_HOME",
        "where sessions, locks and user stations live (default: data_dir in litmus.yaml, $LITMUS_HOME, the user data dir)",
        parse_path,
        metavar="DIR",
        project_key="data_dir",
    ),
    Setting(
        "lock_timeout",
        "--litmus-lock-timeout",
        "LITMUS_LOCK_TIMEOUT",
        "seconds to wait for a held instrument: 0 fails at once, 'none' waits forever (default 0)",
        parse_timeout,
        default=0.0,
        metavar="SECONDS",
    ),
    Setting(
        "dut",
        "--dut",
        "LITMUS_DUT",
        "serial number of the unit under test; SN1,SN2 gives one per xdist worker (default: the litmus_dut hook)",
        parse_serials,
        default=(),
        metavar="SERIAL",
    ),
    Setting(
        "dut_part",
        "--dut-part",
        "LITMUS_DUT_PART",
        "part number of the unit under test",
        check_part,
        metavar="PART",
    ),
    Setting(
        "limits",
        "--limits",
        "LITMUS_LIMITS",
        "limits file that measure() judges by (default: limits in the station file, then in litmus.yaml)",
        parse_file,
        metavar="PATH",
        project_key="limits",
    ),
    Setting(
        "locks",
        "--litmus-locks",
        "LITMUS_LOCKS",
        "where instrument locks are held: host (lock files in the data dir) or a postgresql:// URL (default host)",
        parse_locks,
        default="host",
        metavar="URL",
        project_key="locks",
    ),
    Setting(
        "fleet",
        "--litmus-fleet",
        "LITMUS_FLEET",
        "postgresql:// URL of the fleet store sessions are shipped to after they end (default: none)",
        parse_fleet,
        metavar="URL",
        project_key="fleet",
    ),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


# --------------------------------------------------------------------------- resolving


class Resolved(NamedTuple, Generic[T]):
    """A setting's value and where it came from (``--station``, ``LITMUS_STATION``, ``ini litmus_station``, ...)."""

    value: T
    source: str


class IniFile(NamedTuple):
    """The pytest ini door: ``get(key)`` is the key's text ("" or None when unset); ``path`` names the file."""

    get: Callable[[str], str | None]
    path: Path | None = None


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved, and the ``litmus.yaml`` they were read against."""

    station: Resolved[str | None]
    mock: Resolved[bool]
    data_dir: Resolved[Path]
    lock_timeout: Resolved[float | None]
    dut: Resolved[tuple[str, ...]]
    dut_part: Resolved[str | None]
    #: A limits file path (option, environment, ini) or ``litmus.yaml``'s ``limits:``; see :meth:`load_station`.
    limits: Resolved[Path | LimitsRef | None]
    #: ``host`` or a ``postgresql://`` URL: where instrument locks are held.
    locks: Resolved[str]
    #: The fleet store's ``postgresql://`` URL, or None.
    fleet: Resolved[str | None]
    project: ProjectConfig | None
    start: Path
    #: pytest's rootdir, where the search for ``litmus.yaml`` and ``stations/`` stops (None: outside pytest).
    rootdir: Path | None = None

    @property
    def sources(self) -> dict[str, str]:
        """Where each setting came from, by name (what the report header shows)."""
        return {name: getattr(self, name).source for name in BY_NAME}

    def check_serials(self, station: StationConfig) -> None:
        """Every ``dut`` serial matches the serial pattern (:func:`dut_pattern`), or a StationConfigError."""
        pattern, where = dut_pattern(station, self.project)
        for serial in self.dut.value:
            if pattern is not None and pattern.fullmatch(serial) is None:
                raise StationConfigError(
                    self.dut.source,
                    "dut",
                    f"a serial number matching dut_pattern {pattern.pattern!r} of {where}",
                    serial,
                )

    def units(
        self, station: StationConfig, slots: Sequence[str], ask: Callable[[str], object]
    ) -> dict[str, Dut | None]:
        """The unit of each slot: the ``dut`` setting, else ``ask(slot)`` (the ``litmus_dut`` hook), checked.

        Serials that do not fit the slots are a StationConfigError; a bad hook answer a LitmusError.
        """
        self.check_serials(station)
        pattern, _ = dut_pattern(station, self.project)
        try:
            return resolve_units(self.dut.value, self.dut_part.value, pattern, slots, ask)
        except SerialsMismatch as exc:
            raise StationConfigError(self.dut.source, "dut", str(exc), ",".join(self.dut.value)) from None

    def load_station(self) -> StationConfig:
        """The selected station, found, loaded and checked against the run.

        No station selected is a :class:`StationConfigError`; so is a data dir
        this user cannot write sessions into, and with ``mock``, a station
        without a usable simulation file. Every error names where its value came from.

        Its limits, first found of: ``--limits`` / ``LITMUS_LIMITS`` /
        ``litmus_limits`` (a file), the station file's ``limits:``, then
        ``litmus.yaml``'s: the more specific source wins (docs/limits.md).
        """
        if self.station.value is None:
            raise StationConfigError(self.project.path if self.project else None, "station", _NO_STATION, has_got=False)
        check_data_dir(self.data_dir)
        found = find_station_file(
            self.station.value, self.data_dir.value, self.start, self.rootdir, source=self.station.source
        )
        station = load_station_file(found, limits_cache=self.limits_cache)
        if self.mock.value:
            if station.simulation is None:
                raise StationConfigError(
                    station.path,
                    "simulation",
                    f"a pyvisa-sim file to run on, as mock is on ({self.mock.source})",
                    has_got=False,
                )
            check_simulation(station, station.simulation)
        limits = self._limits(station.limits)
        return station if limits is station.limits else replace(station, limits=limits)

    @property
    def limits_cache(self) -> Path:
        """Where checked limits tables are kept by content, this user's only (docs/limits.md)."""
        return self.data_dir.value / "cache" / "limits"

    def _limits(self, own: LimitsTable | None) -> LimitsTable | None:
        """The table in force, given the station file's own (``own``)."""
        value, source = self.limits
        if value is None:
            return own
        if isinstance(value, LimitsRef):  # litmus.yaml's: the station file's own come first
            return own if own is not None else value.load(self.limits_cache)
        path = value if value.is_absolute() else self.start / value
        return load_limits(path, door=source, cache=self.limits_cache)


def dut_pattern(station: StationConfig, project: ProjectConfig | None) -> tuple[re.Pattern[str] | None, str | None]:
    """The serial pattern units on ``station`` must match, and the file it comes from.

    The station file's ``dut_pattern`` wins over ``litmus.yaml``'s; neither: None.
    """
    if station.dut_pattern is not None:
        return station.dut_pattern, str(station.path)
    if project is not None and project.dut_pattern is not None:
        return project.dut_pattern, str(project.path)
    return None, None


def check_data_dir(data_dir: Resolved[Path]) -> None:
    """A directory this user can create sessions and locks in, or what it will be created in.

    Checked without creating anything: ``data_dir`` itself if it exists, else
    its nearest existing ancestor. The error names the door it came from.
    """
    path, source = data_dir
    expected = f"a directory this user can write (the data dir, from {source})"
    existing = path
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            where = "" if existing == path else f" ({existing} is not a directory)"
            raise StationConfigError(path, "data_dir", expected, found=f"a file{where}")
        if not os.access(existing, os.W_OK | os.X_OK):
            if os.statvfs(existing).f_flag & os.ST_RDONLY:
                why = "is on a read-only file system"
            else:
                why = f"is not writable (mode {oct(existing.stat().st_mode & 0o7777)})"
            raise StationConfigError(path, "data_dir", expected, found=f"{existing} {why}")
    except OSError as exc:  # an ancestor this user cannot even look into
        raise StationConfigError(path, "data_dir", expected, found=f"{exc.strerror}: {exc.filename}") from None


def resolve(
    explicit: Mapping[str, tuple[object, str]] | None = None,
    *,
    ini: IniFile | None = None,
    start: Path | None = None,
    environ: Mapping[str, str] | None = None,
    rootdir: Path | None = None,
) -> Settings:
    """Resolve every setting.

    ``explicit`` maps a setting's name to ``(value, door)`` for values given by
    argument or option (``{"station": ("cell-7", "--station")}``); a value of
    None is "not given". ``ini`` is pytest's ini door, ``start`` where
    ``litmus.yaml`` and ``stations/`` are searched from (default: the working
    directory) up to the project root (``rootdir``, pytest's, or the first
    directory holding ``.git``, ``pyproject.toml``, ``pytest.ini``,
    ``setup.cfg`` or ``tox.ini``), ``environ`` the environment (default: ``os.environ``).
    """
    start = (start or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    explicit = explicit or {}
    project = find_project_config(start, rootdir)

    def one(name: str) -> Resolved[Any]:
        return resolve_setting(name, explicit.get(name), ini=ini, project=project, environ=environ)

    return Settings(
        station=one("station"),
        mock=one("mock"),
        data_dir=one("data_dir"),
        lock_timeout=one("lock_timeout"),
        dut=one("dut"),
        dut_part=one("dut_part"),
        limits=one("limits"),
        locks=one("locks"),
        fleet=one("fleet"),
        project=project,
        start=start,
        rootdir=rootdir,
    )


def resolve_setting(
    name: str,
    given: tuple[object, str] | None = None,
    *,
    ini: IniFile | None = None,
    project: ProjectConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolved[Any]:
    """One setting through its doors; ``given`` is ``(value, door)`` of an explicit value (None: not given)."""
    setting = BY_NAME[name]
    if given is not None and given[0] is not None:
        value, label = given
        return Resolved(setting.parse_from(value, label), label)
    env = os.environ if environ is None else environ
    doors: list[Callable[[], Resolved[Any] | None]] = [
        lambda: _from_env(setting, env),
        lambda: _from_ini(setting, ini),
        lambda: _from_project(setting, project),
    ]
    if name == "data_dir":  # litmus.yaml before $LITMUS_HOME: see the module docstring
        doors = [doors[1], doors[2], doors[0]]
    for lookup in doors:
        found = lookup()
        if found is not None:
            return found
    return _default(setting)


def _from_env(setting: Setting, environ: Mapping[str, str]) -> Resolved[Any] | None:
    if setting.env is None:
        return None
    text = environ.get(setting.env)
    if text is None or (not text.strip() and not setting.flag):
        return None
    return Resolved(setting.parse_from(text, f"environment variable {setting.env}"), setting.env)


def _from_ini(setting: Setting, ini: IniFile | None) -> Resolved[Any] | None:
    if ini is None:
        return None
    text = ini.get(setting.ini)
    if not text or not text.strip():
        return None
    door = f"{ini.path or 'ini file'} [{setting.ini}]"
    value = setting.parse_from(text, door)
    if isinstance(value, Path) and not value.is_absolute() and ini.path is not None:  # as pytest's own paths
        value = ini.path.parent / value
    return Resolved(value, f"ini {setting.ini}")


def _from_project(setting: Setting, project: ProjectConfig | None) -> Resolved[Any] | None:
    if project is None or setting.project_key is None:
        return None
    value = getattr(project, setting.project_key)  # already validated by config.load_project_config
    if value is None:
        return None
    return Resolved(value, f"{setting.project_key} in {project.path}")


def _default(setting: Setting) -> Resolved[Any]:
    if setting.name == "data_dir":
        import platformdirs

        return Resolved(Path(platformdirs.user_data_dir("litmus")), "user data dir")
    return Resolved(setting.default, "default")


def resolve_data_dir(
    explicit: str | os.PathLike[str] | None = None,
    *,
    project: ProjectConfig | None = None,
    start: Path | None = None,
) -> Path:
    """The data dir: ``explicit`` -> ``litmus.yaml`` ``data_dir`` -> ``$LITMUS_HOME`` -> user data dir."""
    if project is None:
        project = find_project_config(start)
    resolved: Path = resolve_setting("data_dir", (explicit or None, "data_dir"), project=project).value
    return resolved


def load_station(
    station: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    start: Path | None = None,
) -> tuple[StationConfig, Path]:
    """Resolve and load a station; returns it with the resolved data dir.

    ``station`` None means ``$LITMUS_STATION``, then ``default_station`` from the
    nearest ``litmus.yaml`` (wraps :func:`resolve`).
    """
    settings = resolve({"station": (station, "station"), "data_dir": (data_dir, "data_dir")}, start=start)
    return settings.load_station(), settings.data_dir.value
