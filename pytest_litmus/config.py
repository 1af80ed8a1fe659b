"""Station files, ``litmus.yaml`` and the data dir: finding, loading, validating.

Nothing here imports the VISA stack; loading a station is a YAML parse plus checks.
Every error is a :class:`StationConfigError` naming the file, the key path and
what was expected.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from pytest_litmus.dburl import FLEET_EXPECTED, LOCKS_EXPECTED, check_locks, is_postgres_url
from pytest_litmus.dut import check_pattern
from pytest_litmus.errors import StationConfigError, StationNotFound, UnknownRole
from pytest_litmus.limits import LimitsRef, LimitsTable, inline_limits
from pytest_litmus.visaname import check_resource_name, resource_key
from pytest_litmus.yamlfile import read_yaml, read_yaml_digest

LockMode = Literal["exclusive", "shared", "none"]
LOCK_MODES: tuple[LockMode, ...] = ("exclusive", "shared", "none")
DEFAULT_DRIVER = "pytest_litmus.drivers:ScpiInstrument"
PROJECT_FILE = "litmus.yaml"
STATIONS_DIR = "stations"
#: What marks a project's root: the search for ``litmus.yaml`` and ``stations/`` stops there.
PROJECT_MARKERS = (".git", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
#: VISA's longest finite timeout, in ms (``VI_TMO_INFINITE`` is 0xFFFFFFFF).
MAX_TIMEOUT_MS = 0xFFFFFFFE
#: Fixture names the plugin itself defines, or pytest's own that a role must not shadow.
RESERVED_ROLES = frozenset({"station", "measure", "srq", "request", "pytestconfig"})

_STATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DRIVER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class InstrumentConfig:
    """One role of a station: where the instrument is and how to open it."""

    role: str
    resource: str
    driver: str = DEFAULT_DRIVER
    timeout_ms: int | None = None
    read_termination: str | None = None
    write_termination: str | None = None
    lock: LockMode = "exclusive"
    options: Mapping[str, Any] = field(default_factory=dict)

    def open_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ResourceManager.open_resource``."""
        kwargs: dict[str, Any] = dict(self.options)
        if self.timeout_ms is not None:
            kwargs["timeout"] = self.timeout_ms
        if self.read_termination is not None:
            kwargs["read_termination"] = self.read_termination
        if self.write_termination is not None:
            kwargs["write_termination"] = self.write_termination
        return kwargs


@dataclass(frozen=True)
class StationConfig:
    """A loaded, validated station file."""

    id: str
    path: Path
    instruments: Mapping[str, InstrumentConfig]
    description: str = ""
    simulation: Path | None = None
    visa_library: str | None = None
    #: ``dut_pattern``: a regular expression every serial tested on this station must match whole.
    dut_pattern: re.Pattern[str] | None = None
    #: The limits measurements are judged against (the station file's ``limits:``, or what the
    #: settings put in its place: ``--limits``, ``litmus.yaml``); None: inline limits only.
    limits: LimitsTable | None = None

    @property
    def roles(self) -> list[str]:
        return list(self.instruments)

    def role(self, role: str) -> InstrumentConfig:
        """The role's configuration, or :class:`UnknownRole` naming the roles there are."""
        try:
            return self.instruments[role]
        except KeyError:
            raise UnknownRole(role, self.id, self.roles, self.path) from None


@dataclass(frozen=True)
class ProjectConfig:
    """``litmus.yaml``: project-wide defaults."""

    path: Path
    default_station: str | None = None
    data_dir: Path | None = None
    #: ``dut_pattern``: the project's serial pattern (a station's own one wins).
    dut_pattern: re.Pattern[str] | None = None
    #: Its ``limits:`` (a mapping, or a limits file), loaded when a station is.
    limits: LimitsRef | None = None
    #: ``locks:``: ``host`` (flock files in the data dir) or a ``postgresql://`` URL (docs/fleet.md).
    locks: str | None = None
    #: ``fleet:``: the ``postgresql://`` URL sessions are shipped to (docs/fleet.md).
    fleet: str | None = None
    #: ``page: {command: ...}``: what the station page's Start button runs (docs/page.md).
    page_command: str | None = None


# --------------------------------------------------------------------------- finding


def project_root(start: Path | None = None, rootdir: Path | None = None) -> Path:
    """The project ``start`` is in: the first of its ancestors (itself included) that is
    ``rootdir`` (pytest's) or holds one of :data:`PROJECT_MARKERS`; ``start`` itself if none does.
    """
    start = (start or Path.cwd()).resolve()
    root = rootdir.resolve() if rootdir is not None else None
    for folder in (start, *start.parents):
        if folder == root or any(_exists(folder / marker) for marker in PROJECT_MARKERS):
            return folder
    return start


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # an unreadable ancestor marks nothing
        return False


def _ancestors(start: Path | None, rootdir: Path | None = None) -> Iterator[Path]:
    """``start`` and its ancestors up to its project's root (:func:`project_root`)."""
    start = (start or Path.cwd()).resolve()
    root = project_root(start, rootdir)
    for folder in (start, *start.parents):
        yield folder
        if folder == root:
            return


def find_project_config(start: Path | None = None, rootdir: Path | None = None) -> ProjectConfig | None:
    """The nearest ``litmus.yaml`` from ``start`` up to the project root, loaded; None if there is none."""
    for folder in _ancestors(start, rootdir):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return load_project_config(candidate)
    return None


def check_station_id(station: str, source: str = "station") -> str:
    """Refuse ids that are not plain names (path separators, ``..``, empty)."""
    if not isinstance(station, str) or not _STATION_ID.fullmatch(station) or ".." in station:
        raise StationConfigError(
            None, source, "a plain station name (letters, digits, '.', '_', '-'; no path separators or '..')", station
        )
    return station


def station_search_dirs(data_dir: Path, start: Path | None = None, rootdir: Path | None = None) -> list[Path]:
    """Where station files are looked for, in order: ``stations/`` up to the project root, then the data dir."""
    dirs = [folder / STATIONS_DIR for folder in _ancestors(start, rootdir)]
    dirs = [d for d in dirs if _is_dir(d)]
    dirs.append(data_dir / STATIONS_DIR)
    return dirs


def available_stations(dirs: list[Path]) -> list[str]:
    """Ids of every station file in ``dirs``, sorted."""
    found: set[str] = set()
    for folder in dirs:
        try:
            found.update(p.stem for p in folder.glob("*.yaml"))
        except OSError:  # unreadable: listed as searched, nothing found there
            continue
    return sorted(found)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # not searchable (permissions): as good as absent
        return False


def find_station_file(
    station: str, data_dir: Path, start: Path | None = None, rootdir: Path | None = None, *, source: str | None = None
) -> Path:
    """The first ``<dir>/<station>.yaml`` along :func:`station_search_dirs`.

    ``source`` (``LITMUS_STATION``, ``--station``...) is named if it is not found.
    """
    check_station_id(station)
    dirs = station_search_dirs(data_dir, start, rootdir)
    for folder in dirs:
        candidate = folder / f"{station}.yaml"
        if candidate.exists() and not candidate.is_dir():
            return candidate
    raise StationNotFound(station, dirs, available_stations(dirs), source=source)


# --------------------------------------------------------------------------- loading


class _Reader:
    """Checks one mapping of a file, key by key, and remembers which keys it used."""

    def __init__(self, path: Path, data: Any, prefix: str = "") -> None:
        self.path = path
        self.prefix = prefix
        if data is None and prefix == "":
            data = {}
        if not isinstance(data, dict):
            raise StationConfigError(path, prefix or "(top level)", "a mapping of keys to values", data)
        self.data: dict[Any, Any] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, expected: str, got: Any) -> StationConfigError:
        return StationConfigError(self.path, self.key(name), expected, got)

    def get(self, name: str, expected: str, check: Callable[[Any], bool], *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise StationConfigError(self.path, self.key(name), f"{expected} (required)", has_got=False)
            return None
        value = self.data[name]
        if not check(value):
            raise self.error(name, expected, value)
        return value

    def string(self, name: str, *, required: bool = False, allow_empty: bool = False) -> str | None:
        expected = "a string" if allow_empty else "a non-empty string"
        return cast(
            "str | None",
            self.get(name, expected, lambda v: isinstance(v, str) and (allow_empty or bool(v)), required=required),
        )

    def path_value(self, name: str) -> Path | None:
        text = self.string(name)
        if text is None:
            return None
        resolved = (self.path.parent / Path(text).expanduser()).resolve()
        if not resolved.is_file():
            what = "a directory" if resolved.is_dir() else "no such file"
            raise StationConfigError(
                self.path, self.key(name), f"an existing file (looked for {resolved})", found=f"{text!r}: {what}"
            )
        return resolved

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            known = ", ".join(sorted(self.used))
            raise StationConfigError(
                self.path, self.key(str(unknown[0])), f"one of the known keys ({known})", "unknown key"
            )


def load_project_config(path: Path) -> ProjectConfig:
    """Load and validate a ``litmus.yaml``."""
    data, sha256 = read_yaml_digest(path)
    reader = _Reader(path, data)
    default_station = reader.string("default_station")
    if default_station is not None:
        try:
            check_station_id(default_station)
        except StationConfigError:
            raise reader.error("default_station", "a plain station name", default_station) from None
    data_dir_text = reader.string("data_dir")
    dut_pattern = _dut_pattern(reader)
    limits = inline_limits(path, reader.get("limits", "limits", lambda v: True), sha256)
    locks = reader.get("locks", LOCKS_EXPECTED, lambda v: isinstance(v, str) and check_locks(v) is None)
    fleet = reader.get("fleet", FLEET_EXPECTED, lambda v: isinstance(v, str) and is_postgres_url(v))
    page_command = _page_command(path, reader.get("page", "a mapping with a command", lambda v: isinstance(v, dict)))
    reader.finish()
    data_dir = (path.parent / Path(data_dir_text).expanduser()).resolve() if data_dir_text else None
    return ProjectConfig(
        path=path,
        default_station=default_station,
        data_dir=data_dir,
        dut_pattern=dut_pattern,
        limits=limits,
        locks=locks,
        fleet=fleet,
        page_command=page_command,
    )


#: The placeholders a page command may use.
PAGE_PLACEHOLDERS = ("serial", "station")


def _page_command(path: Path, data: dict[str, Any] | None) -> str | None:
    if data is None:
        return None
    reader = _Reader(path, data, "page")
    command = reader.string("command")
    reader.finish()
    if command is None:
        return None
    import string

    try:
        names = {field for _, field, _, _ in string.Formatter().parse(command) if field is not None}
    except ValueError as exc:
        raise reader.error("command", "a command with {serial} and {station} placeholders", command) from exc
    unknown = sorted(names - set(PAGE_PLACEHOLDERS))
    if unknown:
        raise reader.error(
            "command", f"placeholders among {{serial}} and {{station}} only, not {{{unknown[0]}}}", command
        )
    return command


def _dut_pattern(reader: _Reader) -> re.Pattern[str] | None:
    text = reader.get("dut_pattern", "a regular expression", lambda v: True)
    return None if text is None else check_pattern(reader.path, reader.key("dut_pattern"), text)


def _is_timeout_ms(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TIMEOUT_MS)


def _load_instrument(path: Path, role: Any, data: Any) -> InstrumentConfig:
    prefix = f"instruments.{role}"
    if not isinstance(role, str) or not role.isidentifier() or keyword.iskeyword(role):
        raise StationConfigError(path, prefix, "a role name that is a Python identifier (it becomes a fixture)", role)
    if role in RESERVED_ROLES:
        raise StationConfigError(
            path, prefix, f"a role name other than the reserved {', '.join(sorted(RESERVED_ROLES))}", role
        )
    reader = _Reader(path, data, prefix)
    resource = cast(str, reader.string("resource", required=True))
    problem = check_resource_name(resource)
    if problem is not None:
        raise reader.error(
            "resource",
            f"a VISA resource name like GPIB0::17::INSTR or TCPIP0::host::inst0::INSTR ({problem})",
            resource,
        )
    driver = reader.get(
        "driver", "an import path 'package.module:Class'", lambda v: isinstance(v, str) and bool(_DRIVER.fullmatch(v))
    )
    timeout_ms = reader.get(
        "timeout_ms",
        f"a positive whole number of milliseconds up to {MAX_TIMEOUT_MS} (VISA's limit), or null for no timeout",
        _is_timeout_ms,
    )
    read_term = reader.string("read_termination", allow_empty=True)
    write_term = reader.string("write_termination", allow_empty=True)
    lock = reader.get("lock", "one of exclusive, shared, none", lambda v: v in LOCK_MODES)
    options = reader.get(
        "options",
        "a mapping of pyvisa resource attributes (e.g. baud_rate: 9600)",
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and k.isidentifier() for k in v),
    )
    reader.finish()
    return InstrumentConfig(
        role=role,
        resource=resource,
        driver=driver or DEFAULT_DRIVER,
        timeout_ms=timeout_ms,
        read_termination=read_term,
        write_termination=write_term,
        lock=lock or "exclusive",
        options=dict(options or {}),
    )


def _resolve_visa_library(reader: _Reader) -> str | None:
    """``path/to/sim.yaml@sim`` is made absolute against the station file; other specs pass through."""
    spec = reader.string("visa_library")
    if spec is None:
        return None
    argument, sep, backend = spec.rpartition("@")
    if not sep:
        argument, backend = spec, ""
    if argument.endswith((".yaml", ".yml")):
        resolved = (reader.path.parent / Path(argument).expanduser()).resolve()
        if not resolved.is_file():
            raise reader.error("visa_library", f"an existing simulation file (looked for {resolved})", spec)
        return f"{resolved}@{backend}" if sep else str(resolved)
    return spec


def load_station_file(path: Path, *, limits_cache: Path | None = None) -> StationConfig:
    """Load and validate one station file; its id is the file name's stem.

    ``limits_cache``: where checked limits tables are kept (see :func:`pytest_litmus.limits.load_limits`).
    """
    path = path.resolve()
    station_id = check_station_id(path.stem, "station file name")
    data, sha256 = read_yaml_digest(path)
    reader = _Reader(path, data)
    declared = reader.string("station")
    if declared is not None and declared != station_id:
        raise reader.error("station", f"{station_id!r} (the file name) or no station key", declared)
    description = reader.string("description", allow_empty=True) or ""
    simulation = reader.path_value("simulation")
    visa_library = _resolve_visa_library(reader)
    dut_pattern = _dut_pattern(reader)
    limits = inline_limits(path, reader.get("limits", "limits", lambda v: True), sha256)
    raw_instruments = reader.get(
        "instruments",
        "a non-empty mapping of role names to instruments",
        lambda v: isinstance(v, dict) and bool(v),
        required=True,
    )
    reader.finish()
    instruments = {role: _load_instrument(path, role, data) for role, data in raw_instruments.items()}
    _one_role_per_instrument(path, instruments)
    station = StationConfig(
        id=station_id,
        path=path,
        instruments=instruments,
        description=description,
        simulation=simulation,
        visa_library=visa_library,
        dut_pattern=dut_pattern,
        limits=limits.load(limits_cache) if limits is not None else None,
    )
    simulated = simulation_of(visa_library)
    if simulated is not None:
        check_simulation(station, Path(simulated), "visa_library")
    return station


def simulation_of(visa_library: str | None) -> str | None:
    """The simulation file a ``visa_library`` spec names (``/abs/sim.yaml@sim``), else None."""
    argument, _, backend = (visa_library or "").rpartition("@")
    return argument if backend == "sim" and argument else None


def _one_role_per_instrument(path: Path, instruments: Mapping[str, InstrumentConfig]) -> None:
    """Two roles on one instrument (two spellings of one address) would lock each other out."""
    seen: dict[str, str] = {}
    for role, cfg in instruments.items():
        first = seen.setdefault(resource_key(cfg.resource), role)
        if first != role:
            raise StationConfigError(
                path,
                f"instruments.{role}.resource",
                f"an instrument no other role uses (role {first!r} is at {instruments[first].resource})",
                cfg.resource,
            )


def check_simulation(station: StationConfig, simulation: Path, door: str = "simulation") -> None:
    """``simulation`` is a pyvisa-sim file with an entry for every role of ``station``.

    ``door`` is the station key that named the file (``simulation`` for
    ``--mock``, ``visa_library`` for a ``file.yaml@sim`` station). Resource names
    are compared in their canonical form (``GPIB::9::INSTR`` is ``GPIB0::9::INSTR``).
    """
    data = read_yaml(simulation)
    expected = f"a pyvisa-sim simulation file (named by {door} in {station.path}) with 'spec' and 'resources' keys"
    if not isinstance(data, dict):
        raise StationConfigError(simulation, "(top level)", expected, data)
    resources = data.get("resources")
    if "spec" not in data or not isinstance(resources, dict):
        missing = "spec" if "spec" not in data else "resources"
        raise StationConfigError(simulation, missing, expected, found=f"keys {', '.join(map(str, data)) or 'none'}")
    known = {resource_key(str(name)) for name in resources}
    for role, cfg in station.instruments.items():
        if resource_key(cfg.resource) not in known:
            raise StationConfigError(
                simulation,
                "resources",
                f"an entry for {cfg.resource} (role {role!r} of station {station.id!r})",
                has_got=False,
            )
