"""Every setting has three doors: a command-line option, an environment variable, an ini key.

One table defines them, with one help text each; one resolver applies the order
option -> environment -> ini and says where a bad value came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_litmus.errors import StationConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("1, true, yes, on or 0, false, no, off")


def parse_timeout(text: str) -> float | None:
    """Seconds >= 0, or ``none`` / ``inf`` for waiting forever."""
    value = text.strip().lower()
    if value in ("none", "inf", "infinite", "forever"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("seconds >= 0, or 'none' to wait forever") from None
    if seconds < 0 or math.isnan(seconds):
        raise ValueError("seconds >= 0, or 'none' to wait forever")
    return None if math.isinf(seconds) else seconds


def parse_text(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Setting:
    """One setting and its three doors."""

    name: str
    option: str
    env: str | None
    help: str
    parse: Callable[[str], Any]
    default: Any = None
    flag: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return f"litmus_{self.name}"

    @property
    def ini(self) -> str:
        return f"litmus_{self.name}"


SETTINGS = (
    Setting("station", "--station", "LITMUS_STATION", "station id: stations/<ID>.yaml (default: default_station in litmus.yaml)", parse_text, metavar="ID"),
    Setting("mock", "--mock", "LITMUS_MOCK", "run on the station's simulated instruments (no hardware, no host locks)", parse_bool, default=False, flag=True),
    # LITMUS_HOME is the data dir's environment door, applied after litmus.yaml (see config.resolve_data_dir).
    Setting("data_dir", "--litmus-data-dir", None, "where sessions, locks and user stations live (default: data_dir in litmus.yaml, $LITMUS_HOME, the user data dir)", parse_text, metavar="DIR"),
    Setting("lock_timeout", "--litmus-lock-timeout", "LITMUS_LOCK_TIMEOUT", "seconds to wait for a held instrument: 0 fails at once, 'none' waits forever (default 0)", parse_timeout, default=0.0, metavar="SECONDS"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("litmus", "test station (pytest-litmus)")
    for s in SETTINGS:
        env = f" [env {s.env}]" if s.env else ""
        if s.flag:
            group.addoption(s.option, action="store_true", default=None, dest=s.dest, help=f"{s.help}{env}")
        else:
            group.addoption(s.option, action="store", default=None, dest=s.dest, metavar=s.metavar, help=f"{s.help}{env}")
        parser.addini(s.ini, f"{s.help} (same as {s.option})", type="string", default="")


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str  # "--station", "LITMUS_STATION", "ini litmus_station", "default"


def resolve(config: pytest.Config, name: str) -> Resolved:
    """The setting's value and where it came from: option, then environment, then ini."""
    import os

    s = BY_NAME[name]
    option_value = config.getoption(s.dest)
    if option_value is not None:
        if s.flag:
            return Resolved(bool(option_value), s.option)
        return Resolved(_parse(s, str(option_value), s.option), s.option)
    if s.env and os.environ.get(s.env) is not None:
        return Resolved(_parse(s, os.environ[s.env], f"environment variable {s.env}"), s.env)
    ini_value = config.getini(s.ini)
    if ini_value:
        inifile = config.inipath or "ini file"
        return Resolved(_parse(s, str(ini_value), f"{inifile} [{s.ini}]"), f"ini {s.ini}")
    return Resolved(s.default, "default")


def _parse(s: Setting, text: str, source: str) -> Any:
    try:
        value = s.parse(text)
    except ValueError as exc:
        raise StationConfigError(source, s.name, str(exc), text) from None
    if value == "" and not s.flag:
        return None
    return value
