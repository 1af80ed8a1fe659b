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

from pytest_litmus.errors import StationConfigError, StationNotFound, UnknownRole

LockMode = Literal["exclusive", "shared", "none"]
LOCK_MODES: tuple[LockMode, ...] = ("exclusive", "shared", "none")
DEFAULT_DRIVER = "pytest_litmus.drivers:ScpiInstrument"
PROJECT_FILE = "litmus.yaml"
STATIONS_DIR = "stations"
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


# --------------------------------------------------------------------------- finding


def _ancestors(start: Path) -> Iterator[Path]:
    start = start.resolve()
    yield start
    yield from start.parents


def find_project_config(start: Path | None = None) -> ProjectConfig | None:
    """The nearest ``litmus.yaml`` in ``start`` or its ancestors, loaded; None if there is none."""
    for folder in _ancestors(start or Path.cwd()):
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


def station_search_dirs(data_dir: Path, start: Path | None = None) -> list[Path]:
    """Where station files are looked for, in order: project ``stations/`` upward, then the data dir."""
    dirs = [folder / STATIONS_DIR for folder in _ancestors(start or Path.cwd())]
    dirs = [d for d in dirs if d.is_dir()]
    dirs.append(data_dir / STATIONS_DIR)
    return dirs


def available_stations(dirs: list[Path]) -> list[str]:
    """Ids of every station file in ``dirs``, sorted."""
    found: set[str] = set()
    for folder in dirs:
        if folder.is_dir():
            found.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(found)


def find_station_file(station: str, data_dir: Path, start: Path | None = None) -> Path:
    """The first ``<dir>/<station>.yaml`` along :func:`station_search_dirs`."""
    check_station_id(station)
    dirs = station_search_dirs(data_dir, start)
    for folder in dirs:
        candidate = folder / f"{station}.yaml"
        if candidate.is_file():
            return candidate
    raise StationNotFound(station, dirs, available_stations(dirs))


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StationConfigError(path, "(file)", "a readable file", str(exc)) from None
    try:  # libyaml's loader when PyYAML has it: the same documents, parsed ~10x faster
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StationConfigError(path, "(yaml)", f"valid YAML ({problem}{where})", has_got=False) from None


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
        if not resolved.exists():
            raise self.error(name, f"an existing file (looked for {resolved})", text)
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
    reader = _Reader(path, _read_yaml(path))
    default_station = reader.string("default_station")
    if default_station is not None:
        try:
            check_station_id(default_station)
        except StationConfigError:
            raise reader.error("default_station", "a plain station name", default_station) from None
    data_dir_text = reader.string("data_dir")
    reader.finish()
    data_dir = (path.parent / Path(data_dir_text).expanduser()).resolve() if data_dir_text else None
    return ProjectConfig(path=path, default_station=default_station, data_dir=data_dir)


def _is_positive_int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


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
    driver = reader.get(
        "driver", "an import path 'package.module:Class'", lambda v: isinstance(v, str) and bool(_DRIVER.fullmatch(v))
    )
    timeout_ms = reader.get(
        "timeout_ms", "a positive whole number of milliseconds, or null for no timeout", _is_positive_int_or_none
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


def load_station_file(path: Path) -> StationConfig:
    """Load and validate one station file; its id is the file name's stem."""
    path = path.resolve()
    station_id = check_station_id(path.stem, "station file name")
    reader = _Reader(path, _read_yaml(path))
    declared = reader.string("station")
    if declared is not None and declared != station_id:
        raise reader.error("station", f"{station_id!r} (the file name) or no station key", declared)
    description = reader.string("description", allow_empty=True) or ""
    simulation = reader.path_value("simulation")
    visa_library = _resolve_visa_library(reader)
    raw_instruments = reader.get(
        "instruments",
        "a non-empty mapping of role names to instruments",
        lambda v: isinstance(v, dict) and bool(v),
        required=True,
    )
    reader.finish()
    instruments = {role: _load_instrument(path, role, data) for role, data in raw_instruments.items()}
    return StationConfig(
        id=station_id,
        path=path,
        instruments=instruments,
        description=description,
        simulation=simulation,
        visa_library=visa_library,
    )
