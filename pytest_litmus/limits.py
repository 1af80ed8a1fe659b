"""Limits files: measurement name -> the limits it is judged against (docs/limits.md).

A limits document is a YAML mapping::

    unlisted: error            # or open: how a name the file lacks is treated
    measurements:
      rail_3v3: {low: 3.2, high: 3.4, units: V}
      rail_5v: {nominal: 5.0, tolerance_percent: 2, units: V}
      fw_version: {equals: "1.4.2"}

It is a file of its own (``--limits``, ``LITMUS_LIMITS``, ``litmus_limits``) or
the ``limits:`` key of a station file or ``litmus.yaml`` (a mapping, or a path
relative to that file). Every problem is a
:class:`~pytest_litmus.errors.StationConfigError` naming the file, the key path
(``measurements.rail_3v3.low``) and what was expected. A loaded
:class:`LimitsTable` keeps the path and the SHA-256 of the bytes it was parsed from.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pytest_litmus.atomicfile import write_bytes
from pytest_litmus.errors import LimitConflict, LimitNotListed, LimitTypeError, StationConfigError
from pytest_litmus.limittext import LimitsDict, describe_limits, format_number, limit_texts
from pytest_litmus.yamlfile import read_yaml_digest

__all__ = [
    "UNLISTED",
    "LimitSpec",
    "LimitsRef",
    "LimitsTable",
    "describe_limits",
    "format_number",
    "inline_limits",
    "limit_texts",
    "load_limits",
    "parse_limits",
]

Unlisted = Literal["error", "open"]
#: ``unlisted:`` values: a name the file lacks is an error (the default), or judged by its inline limits.
UNLISTED: tuple[Unlisted, ...] = ("error", "open")
_TOP_KEYS = ("measurements", "unlisted")
_NUMBER_KEYS = ("low", "high", "nominal", "tolerance", "tolerance_percent", "marginal_low", "marginal_high")
_SPEC_KEYS = (*_NUMBER_KEYS, "low_inclusive", "high_inclusive", "equals", "units")
#: What PyYAML (YAML 1.1) reads as text although it looks like a number: ``1e-3``, ``5E6``.
_LOOKS_NUMERIC = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")


# --------------------------------------------------------------------------- the model


@dataclass(slots=True)
class LimitSpec:
    """One measurement's limits. ``low``/``high`` are the effective numeric bounds (a nominal's band included).

    A value passes when it lies within them (each side inclusive or exclusive),
    or equals ``equals`` (a string, bool or int, of the same type: ``True`` is
    not ``1``). A passing value at or beyond ``marginal_low``/``marginal_high``
    is marginal (OpenHTF's ``in_range(..., marginal_minimum, marginal_maximum)``).
    Read-only by contract (not frozen: a frozen ``__init__`` doubled a cached load's time).
    """

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    nominal: float | None = None
    tolerance: float | None = None
    tolerance_percent: float | None = None
    equals: str | int | bool | None = None
    marginal_low: float | None = None
    marginal_high: float | None = None
    units: str | None = None
    source: Literal["file", "inline"] = "file"
    #: The canonical ``limits`` dict of a Measurement event (nulls left out), read-only: a :class:`LimitsDict`.
    as_dict: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.as_dict:
            self.as_dict = LimitsDict(self.as_dict)  # read-only: measurements share it
        else:
            keys = ("low", "high", "nominal", "tolerance", "tolerance_percent", "equals")
            shown: dict[str, Any] = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
            if self.low is not None or self.high is not None:
                shown["low_inclusive"], shown["high_inclusive"] = self.low_inclusive, self.high_inclusive
            for key in ("marginal_low", "marginal_high", "units"):
                if getattr(self, key) is not None:
                    shown[key] = getattr(self, key)
            shown["source"] = self.source
            self.as_dict = LimitsDict(shown)

    @property
    def numeric(self) -> bool:
        return self.low is not None or self.high is not None

    def check(self, name: str, value: Any) -> tuple[bool, bool]:
        """``(passed, marginal)`` for ``value``; a value of the wrong type is a :class:`LimitTypeError`."""
        __tracebackhide__ = True
        if self.equals is not None:
            return self._equal(name, value), False
        if not self.numeric:
            return True, False
        if type(value) not in (float, int) and (isinstance(value, bool) or not isinstance(value, Real)):
            raise LimitTypeError(name, "has limits, so its value must be a number", value)
        try:
            if not math.isfinite(value):
                return False, False
        except OverflowError:  # a huge int or Fraction: finite, compared exactly below
            pass
        low, high = self.low, self.high
        if low is not None and (value < low if self.low_inclusive else value <= low):
            return False, False
        if high is not None and (value > high if self.high_inclusive else value >= high):
            return False, False
        marginal = (self.marginal_low is not None and value <= self.marginal_low) or (
            self.marginal_high is not None and value >= self.marginal_high
        )
        return True, marginal

    def _equal(self, name: str, value: Any) -> bool:
        expected = self.equals
        if isinstance(expected, bool):
            if not isinstance(value, bool):
                raise LimitTypeError(name, "must equal a boolean, so its value must be True or False", value)
        elif isinstance(expected, int):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise LimitTypeError(name, "must equal an integer, so its value must be an int (not a bool)", value)
        elif not isinstance(value, str):
            raise LimitTypeError(name, "must equal a string, so its value must be a str", value)
        return bool(value == expected)


class LimitsTable:
    """A loaded limits document: ``specs`` by measurement name, from ``path`` (whose bytes hash to ``sha256``).

    Read-only by contract (a plain class: a dataclass costs start-up time). Equal, and
    shown, by its fields, as the :class:`~pytest_litmus.config.StationConfig` holding it.
    """

    __slots__ = ("path", "sha256", "specs", "unlisted")

    def __init__(self, path: Path, sha256: str, specs: Mapping[str, LimitSpec], unlisted: Unlisted = "error") -> None:
        self.path = path
        self.sha256 = sha256
        self.specs = specs
        self.unlisted = unlisted

    def _key(self) -> tuple[Path, str, Mapping[str, LimitSpec], Unlisted]:
        return (self.path, self.sha256, self.specs, self.unlisted)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LimitsTable):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"LimitsTable(path={self.path!r}, sha256={self.sha256!r}, specs={self.specs!r}, unlisted={self.unlisted!r})"
        )

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def spec_for(self, name: str, units: str | None, low: Any, high: Any) -> LimitSpec | None:
        """The file's spec for ``name`` (None: unlisted and ``unlisted: open``).

        An unlisted name is :class:`LimitNotListed` under ``unlisted: error``;
        inline ``low``/``high``/``units`` that differ from the file's are a
        :class:`LimitConflict`. Inline values equal to the file's are allowed.
        """
        __tracebackhide__ = True
        spec = self.specs.get(name)
        if spec is None:
            if self.unlisted == "error" and isinstance(name, str) and name:
                raise LimitNotListed(name, self.path)
            return None
        if low is not None or high is not None or (units is not None and units != spec.units):
            self._agree(name, spec, units, low, high)
        return spec

    def _agree(self, name: str, spec: LimitSpec, units: str | None, low: Any, high: Any) -> None:
        if units is not None and spec.units is not None and units != spec.units:
            raise LimitConflict(name, self.path, f"units {units!r} given, the file says {spec.units!r}")
        for side, given, bound, inclusive in (
            ("low", low, spec.low, spec.low_inclusive),
            ("high", high, spec.high, spec.high_inclusive),
        ):
            if given is None:
                continue
            if spec.equals is not None:
                raise LimitConflict(
                    name, self.path, f"inline {side} given, the file says {describe_limits(spec.as_dict)}"
                )
            same = bound is not None and inclusive and _as_float(given) == bound
            if not same:
                raise LimitConflict(
                    name,
                    self.path,
                    f"inline {side} {_shown(given, bound)} given, the file says {describe_limits(spec.as_dict)}",
                )


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _shown(given: Any, bound: float | None) -> str:
    """``given`` as printed, or its repr where it would print like the file's ``bound`` but differs."""
    text = format_number(given)
    return repr(given) if bound is not None and text == format_number(bound) else text


# --------------------------------------------------------------------------- parsing


class LimitsRef(NamedTuple):
    """Where a table is, not yet loaded: a ``limits:`` mapping inside ``path`` (``inline``) or the limits file ``path``."""

    path: Path
    inline: Any = None
    sha256: str = ""

    def load(self, cache: Path | None = None) -> LimitsTable:
        if self.inline is None:
            return load_limits(self.path, cache=cache)
        found = _cached(cache, self.path, self.sha256, "limits")
        if found is not None:
            return found
        return _store(cache, parse_limits(self.inline, path=self.path, sha256=self.sha256, prefix="limits"), "limits")


def inline_limits(file: Path, value: Any, sha256: str) -> LimitsRef | None:
    """The ``limits:`` key of a station file or ``litmus.yaml``: a mapping, or a path relative to ``file``."""
    if value is None:
        return None
    if isinstance(value, dict):
        return LimitsRef(file, value, sha256)
    if not isinstance(value, str) or not value.strip():
        raise StationConfigError(file, "limits", "a mapping of limits, or the path of a limits file", value)
    resolved = (file.parent / Path(value.strip()).expanduser()).resolve()
    if not resolved.is_file():
        what = "a directory" if resolved.is_dir() else "no such file"
        raise StationConfigError(
            file, "limits", f"an existing limits file (looked for {resolved})", found=f"{value!r}: {what}"
        )
    return LimitsRef(resolved)


def load_limits(path: str | Path, *, door: str | None = None, cache: Path | None = None) -> LimitsTable:
    """Read and check the limits file ``path`` (``door``: the option or variable that named it, for errors).

    ``cache``: a directory where the checked table of each file content (by
    SHA-256) is kept as JSON, so a file read before loads without YAML (see
    docs/performance.md: PyYAML takes ~30 ms for 1,000 names).
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise StationConfigError(door or path, "limits", f"an existing limits file (looked for {path})", found=what)
    if cache is not None:
        try:
            found = _cached(cache, path, hashlib.sha256(path.read_bytes()).hexdigest(), "")
        except OSError:
            found = None
        if found is not None:
            return found
    data, sha256 = read_yaml_digest(path)
    return _store(cache, parse_limits(data, path=path, sha256=sha256), "")


_CACHE_FORMAT = 1


def _cache_file(cache: Path, sha256: str, prefix: str) -> Path:
    return cache / f"{sha256}{'-' + prefix if prefix else ''}.json"


def _cached(cache: Path | None, path: Path, sha256: str, prefix: str) -> LimitsTable | None:
    """The table kept for this content, if this user wrote it (a file others can write is not trusted)."""
    if cache is None:
        return None
    try:
        fd = os.open(_cache_file(cache, sha256, prefix), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        with os.fdopen(os.dup(fd), "rb") as file:
            data = json.loads(file.read())
        if data.get("format") != _CACHE_FORMAT or data.get("sha256") != sha256 or data.get("prefix") != prefix:
            return None
        specs = {name: LimitSpec(**fields, as_dict=fields) for name, fields in data["specs"].items()}
        return LimitsTable(path=path, sha256=sha256, specs=specs, unlisted=data["unlisted"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # damaged: read the YAML again
        return None
    finally:
        os.close(fd)


def _store(cache: Path | None, table: LimitsTable, prefix: str) -> LimitsTable:
    if cache is not None:
        data = {
            "format": _CACHE_FORMAT,
            "sha256": table.sha256,
            "prefix": prefix,
            "unlisted": table.unlisted,
            "specs": {name: spec.as_dict for name, spec in table.specs.items()},
        }
        try:
            cache.parent.mkdir(mode=0o700, exist_ok=True)  # not the data dir itself: the session makes that
            cache.mkdir(mode=0o700, exist_ok=True)
            write_bytes(_cache_file(cache, table.sha256, prefix), json.dumps(data).encode(), mode=0o600)
        except OSError:  # a cache that cannot be written only costs the next start-up time
            pass
    return table


def reload_limits(path: str | Path) -> LimitsTable:
    """The table a session recorded as ``limits_file``: a limits file, or the ``limits:`` mapping of a station file."""
    path = Path(path)
    data, sha256 = read_yaml_digest(path)
    if isinstance(data, dict) and isinstance(data.get("limits"), dict):
        return parse_limits(data["limits"], path=path, sha256=sha256, prefix="limits")
    return parse_limits(data, path=path, sha256=sha256)


def parse_limits(data: Any, *, path: Path, sha256: str, prefix: str = "") -> LimitsTable:
    """A :class:`LimitsTable` from a limits document (``prefix``: its key path in ``path``)."""

    def key(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    if not isinstance(data, dict):
        raise StationConfigError(path, prefix or "(top level)", "a mapping with a 'measurements' key", data)
    for name in data:
        if name not in _TOP_KEYS:
            raise StationConfigError(
                path, key(str(name)), f"one of the known keys ({', '.join(_TOP_KEYS)})", "unknown key"
            )
    unlisted = data.get("unlisted", "error")
    if unlisted not in UNLISTED:
        raise StationConfigError(path, key("unlisted"), "one of error, open", unlisted)
    if "measurements" not in data:
        raise StationConfigError(
            path, key("measurements"), "a mapping of measurement names to limits (required)", has_got=False
        )
    raw = data["measurements"]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StationConfigError(path, key("measurements"), "a mapping of measurement names to limits", raw)
    specs = {}
    for name, spec in raw.items():
        where = key(f"measurements.{name}")
        if not isinstance(name, str) or not name or name != name.strip():
            raise StationConfigError(
                path, where, "a measurement name: a non-empty string without surrounding spaces", name
            )
        specs[name] = _parse_spec(path, where, spec)
    return LimitsTable(path=path, sha256=sha256, specs=specs, unlisted=unlisted)


def _parse_spec(path: Path, where: str, data: Any) -> LimitSpec:
    if not isinstance(data, dict):
        raise StationConfigError(
            path, where, "a mapping of limits (low, high, nominal, equals, ...; {} for none)", data
        )

    def error(name: str, expected: str, got: Any = None, **kw: Any) -> StationConfigError:
        return StationConfigError(path, f"{where}.{name}", expected, got, **kw)

    for name in data:
        if name not in _SPEC_KEYS:
            raise error(str(name), f"one of the known keys ({', '.join(_SPEC_KEYS)})", "unknown key")
    n = {k: _number(error, k, data[k]) for k in _NUMBER_KEYS if k in data}
    flags = {k: _flag(error, k, data[k]) for k in ("low_inclusive", "high_inclusive") if k in data}
    units = data.get("units")
    if "units" in data and (not isinstance(units, str) or not units.strip()):
        raise error("units", "a non-empty string (V, mA, degC)", units)
    if "equals" in data:
        return _equality_spec(error, data, units)
    for side in ("low", "high"):
        if f"{side}_inclusive" in flags and side not in n:
            raise error(f"{side}_inclusive", f"a {side} limit beside it (a nominal's band is inclusive)", has_got=False)
    low, high = n.get("low"), n.get("high")
    if "nominal" in n:
        low, high = _band(error, n)
    elif "tolerance" in n or "tolerance_percent" in n:
        which = "tolerance" if "tolerance" in n else "tolerance_percent"
        raise error(which, "a nominal beside it (nominal: 3.3)", has_got=False)
    if low is not None and high is not None:
        if low > high:
            raise error("low", f"at most high ({format_number(high)})", low)
        if low == high and not (flags.get("low_inclusive", True) and flags.get("high_inclusive", True)):
            raise error("high", f"above low ({format_number(low)}) when a side is exclusive: no value could pass", high)
    _check_marginal(error, n, low, high)
    return LimitSpec(
        low=low,
        high=high,
        low_inclusive=flags.get("low_inclusive", True),
        high_inclusive=flags.get("high_inclusive", True),
        nominal=n.get("nominal"),
        tolerance=n.get("tolerance"),
        tolerance_percent=n.get("tolerance_percent"),
        marginal_low=n.get("marginal_low"),
        marginal_high=n.get("marginal_high"),
        units=units,
    )


def _number(error: Any, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = ""
        if isinstance(value, str) and _LOOKS_NUMERIC.fullmatch(value.strip()):
            hint = f" (YAML reads {value!r} as text: write it with a dot, e.g. 1.0e-3, and no quotes)"
        raise error(name, f"a number{hint}", value)
    try:
        number = float(value)
    except OverflowError:
        raise error(name, "a number a float can hold", value) from None
    if not math.isfinite(number):
        raise error(name, "a finite number (leave the key out for an open side)", value)
    return number


def _flag(error: Any, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise error(name, "true or false", value)
    return value


def _equality_spec(error: Any, data: dict[str, Any], units: str | None) -> LimitSpec:
    others = [k for k in data if k not in ("equals", "units")]
    if others:
        raise error(others[0], "nothing beside equals (except units)", data[others[0]])
    expected = data["equals"]
    if isinstance(expected, float):
        raise error("equals", "a string, boolean or integer (for a float use nominal and tolerance)", expected)
    if not isinstance(expected, (str, bool, int)):
        raise error("equals", "a string, boolean or integer", expected)
    return LimitSpec(equals=expected, units=units)


def _band(error: Any, n: dict[str, float]) -> tuple[float, float]:
    """The effective bounds of ``nominal`` with exactly one of ``tolerance`` / ``tolerance_percent``."""
    for side in ("low", "high"):
        if side in n:
            raise error(side, "no low or high beside nominal (the tolerance sets them)", n[side])
    nominal = n["nominal"]
    if ("tolerance" in n) == ("tolerance_percent" in n):
        raise error("nominal", "exactly one of tolerance or tolerance_percent beside it", has_got=False)
    if "tolerance" in n:
        width = n["tolerance"]
        if width < 0:
            raise error("tolerance", "a number >= 0", width)
    else:
        percent = n["tolerance_percent"]
        if percent < 0:
            raise error("tolerance_percent", "a percentage >= 0", percent)
        if nominal == 0:
            raise error("tolerance_percent", "a nominal other than 0 (a percentage of 0 is 0: use tolerance)", percent)
        width = abs(nominal) * percent / 100
    # Rounded to the 12 digits every output prints: 3.3 +- 1% is judged against 3.333, as shown,
    # not against 3.3329999999999997.
    low, high = float(format(nominal - width, ".12g")), float(format(nominal + width, ".12g"))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise error("nominal", "a band a float can hold", nominal)
    return low, high


def _check_marginal(error: Any, n: dict[str, float], low: float | None, high: float | None) -> None:
    mlow, mhigh = n.get("marginal_low"), n.get("marginal_high")
    if mlow is not None:
        if low is None:
            raise error("marginal_low", "a low limit (or nominal) beside it", mlow)
        if mlow < low or (high is not None and mlow > high):
            raise error(
                "marginal_low", f"a value within the limits ({format_number(low)} .. {format_number(high)})", mlow
            )
    if mhigh is not None:
        if high is None:
            raise error("marginal_high", "a high limit (or nominal) beside it", mhigh)
        if mhigh > high or (low is not None and mhigh < low):
            raise error(
                "marginal_high", f"a value within the limits ({format_number(low)} .. {format_number(high)})", mhigh
            )
    if mlow is not None and mhigh is not None and mlow > mhigh:
        raise error("marginal_low", f"at most marginal_high ({format_number(mhigh)})", mlow)
