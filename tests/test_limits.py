"""Limits files: parsing bad input, judging edge cases, where the table comes from, the plugin, joined stations."""

from __future__ import annotations

import hashlib
import json
import math
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from plugincases import session_events

from pytest_litmus.errors import LimitConflict, LimitNotListed, LimitTypeError, StationConfigError
from pytest_litmus.limits import LimitsTable, describe_limits, format_number, load_limits, parse_limits
from pytest_litmus.measurements import judge

BOARD = """\
measurements:
  rail_3v3: {low: 3.2, high: 3.4, units: V}
  rail_5v: {nominal: 5.0, tolerance_percent: 2, units: V, marginal_low: 4.92, marginal_high: 5.08}
  leak: {high: 10, high_inclusive: false, units: uA}
  fw_version: {equals: "1.4.2"}
  self_test: {equals: true}
  channels: {equals: 4}
  temperature: {units: degC}
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def table(text: str = BOARD, **kw: Any) -> LimitsTable:
    return parse_limits(__import__("yaml").safe_load(text), path=Path("/p/board.yaml"), sha256="0" * 64, **kw)


# ---------------------------------------------------------------------- parsing bad input

BAD = [
    # (the file's text, the key path the error names, what it says was expected)
    ("measurements: {v: {low: '3.2'}}", "measurements.v.low", "a number"),
    ("measurements: {v: {low: 1e-3}}", "measurements.v.low", "YAML reads '1e-3' as text"),
    ("measurements: {v: {low: .nan}}", "measurements.v.low", "a finite number"),
    ("measurements: {v: {high: .inf}}", "measurements.v.high", "leave the key out for an open side"),
    ("measurements: {v: {high: 1.0e+400}}", "measurements.v.high", "a finite number"),
    (f"measurements: {{v: {{high: {10**400}}}}}", "measurements.v.high", "a number a float can hold"),
    ("measurements: {v: {low: true}}", "measurements.v.low", "a number"),
    ("measurements: {v: {low: [1]}}", "measurements.v.low", "a number"),
    ("measurements: {v: {low: 3.4, high: 3.2}}", "measurements.v.low", "at most high (3.2)"),
    ("measurements: {v: {low: 3, high: 3, low_inclusive: false}}", "measurements.v.high", "no value could pass"),
    ("measurements: {v: {low: 3, low_inclusive: 'no'}}", "measurements.v.low_inclusive", "true or false"),
    ("measurements: {v: {high: 3, low_inclusive: false}}", "measurements.v.low_inclusive", "a low limit beside it"),
    (
        "measurements: {v: {nominal: 3.3, tolerance: 0.1, high_inclusive: false}}",
        "measurements.v.high_inclusive",
        "a nominal's band is inclusive",
    ),
    ("measurements: {v: {nominal: 0, tolerance_percent: 5}}", "measurements.v.tolerance_percent", "other than 0"),
    ("measurements: {v: {nominal: 3.3}}", "measurements.v.nominal", "exactly one of tolerance"),
    (
        "measurements: {v: {nominal: 3.3, tolerance: 0.1, tolerance_percent: 1}}",
        "measurements.v.nominal",
        "exactly one of tolerance",
    ),
    ("measurements: {v: {tolerance: 0.1}}", "measurements.v.tolerance", "a nominal beside it"),
    ("measurements: {v: {low: 1, tolerance_percent: 1}}", "measurements.v.tolerance_percent", "a nominal beside"),
    ("measurements: {v: {nominal: 3.3, tolerance: -0.1}}", "measurements.v.tolerance", "a number >= 0"),
    ("measurements: {v: {nominal: 3.3, tolerance_percent: -1}}", "measurements.v.tolerance_percent", ">= 0"),
    ("measurements: {v: {nominal: 3.3, tolerance: 0.1, low: 3}}", "measurements.v.low", "no low or high beside"),
    ("measurements: {v: {nominal: 1.0e+308, tolerance: 1.0e+308}}", "measurements.v.nominal", "a float can hold"),
    ("measurements: {v: {equals: 1.5}}", "measurements.v.equals", "for a float use nominal and tolerance"),
    ("measurements: {v: {equals: null}}", "measurements.v.equals", "a string, boolean or integer"),
    ("measurements: {v: {equals: [OK]}}", "measurements.v.equals", "a string, boolean or integer"),
    ("measurements: {v: {equals: 2024-01-01}}", "measurements.v.equals", "a string, boolean or integer"),
    ("measurements: {v: {equals: OK, low: 1}}", "measurements.v.low", "nothing beside equals"),
    ("measurements: {v: {equals: OK, marginal_low: 1}}", "measurements.v.marginal_low", "nothing beside equals"),
    ("measurements: {v: {low: 3.2, high: 3.4, marginal_low: 3.1}}", "measurements.v.marginal_low", "within the"),
    ("measurements: {v: {low: 3.2, high: 3.4, marginal_high: 3.5}}", "measurements.v.marginal_high", "within the"),
    ("measurements: {v: {low: 3.2, marginal_high: 3.3}}", "measurements.v.marginal_high", "a high limit"),
    ("measurements: {v: {high: 3.4, marginal_low: 3.3}}", "measurements.v.marginal_low", "a low limit"),
    (
        "measurements: {v: {low: 3.2, high: 3.4, marginal_low: 3.35, marginal_high: 3.25}}",
        "measurements.v.marginal_low",
        "at most marginal_high",
    ),
    ("measurements: {v: {lo: 3}}", "measurements.v.lo", "one of the known keys"),
    ("measurements: {v: {low: 3, units: ''}}", "measurements.v.units", "a non-empty string"),
    ("measurements: {v: {low: 3, units: 5}}", "measurements.v.units", "a non-empty string"),
    ("measurements: {v: 3.3}", "measurements.v", "a mapping of limits"),
    ("measurements: {v: }", "measurements.v", "{} for none"),
    ("measurements: {1: {}}", "measurements.1", "a measurement name"),
    ("measurements: {' v': {}}", "measurements. v", "without surrounding spaces"),
    ("measurements: [a, b]", "measurements", "a mapping of measurement names"),
    ("unlisted: error", "measurements", "(required)"),
    ("measurements: {}\nunlisted: maybe", "unlisted", "one of error, open"),
    ("measurements: {}\nlimits: {}", "limits", "one of the known keys (measurements, unlisted)"),
    ("- measurements", "(top level)", "a mapping with a 'measurements' key"),
    ("measurements: {v: {low: 1}, v: {low: 2}}", "measurements.v", "each key once"),
    ("measurements: {v: {low: 1, low: 2}}", "measurements.v.low", "each key once"),
    ("measurements: {v: {low: [unclosed", "(yaml)", "valid YAML"),
]


@pytest.mark.parametrize(("text", "key", "expected"), BAD, ids=[f"{i}-{row[1]}" for i, row in enumerate(BAD)])
def test_a_bad_limits_file_names_the_file_the_key_and_what_was_expected(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path / "board.yaml", text)
    with pytest.raises(StationConfigError) as info:
        load_limits(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert expected in str(info.value)


def test_a_limits_file_that_is_not_utf8_or_not_there(tmp_path: Path) -> None:
    path = write(tmp_path / "board.yaml", "measurements: {v: {units: \xb5A}}\n".encode("latin-1"))
    with pytest.raises(StationConfigError, match=r"UTF-8 text.*byte 0xb5 at line 1"):
        load_limits(path)
    with pytest.raises(StationConfigError, match="--limits: limits: expected an existing limits file") as info:
        load_limits(tmp_path / "nope.yaml", door="--limits")
    assert "no such file" in str(info.value)
    with pytest.raises(StationConfigError, match="got a directory"):
        load_limits(tmp_path)


def test_a_good_file_loads_with_its_sha256_and_canonical_dicts(tmp_path: Path) -> None:
    path = write(tmp_path / "board.yaml", BOARD)
    loaded = load_limits(path)
    assert loaded.path == path and loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(loaded) == 7 and "rail_3v3" in loaded and loaded.unlisted == "error"
    assert loaded.specs["rail_5v"].as_dict == {
        "low": 4.9,
        "high": 5.1,
        "nominal": 5.0,
        "tolerance_percent": 2.0,
        "low_inclusive": True,
        "high_inclusive": True,
        "marginal_low": 4.92,
        "marginal_high": 5.08,
        "units": "V",
        "source": "file",
    }
    assert loaded.specs["self_test"].as_dict == {"equals": True, "source": "file"}
    assert loaded.specs["temperature"].as_dict == {"units": "degC", "source": "file"}
    assert table("measurements:\nunlisted: open").specs == {}


# ---------------------------------------------------------------------- judging


def test_exclusive_and_inclusive_bounds_at_the_edge() -> None:
    t = table("measurements: {v: {low: 1, high: 5, high_inclusive: false}, w: {low: 1, low_inclusive: false}}")
    v, w = t.specs["v"], t.specs["w"]
    assert [judge("v", x, spec=v).outcome for x in (1, 0.999, 4.999, 5, 5.0)] == [
        "passed",
        "failed",
        "passed",
        "failed",
        "failed",
    ]
    assert [judge("w", x, spec=w).outcome for x in (1, 1.0000001, 10**400)] == ["failed", "passed", "passed"]
    assert judge("v", Fraction(9, 2), spec=v).passed


def test_a_percent_band_is_judged_as_it_prints() -> None:
    spec = table("measurements: {v: {nominal: 3.3, tolerance_percent: 1}}").specs["v"]
    assert (spec.low, spec.high) == (3.267, 3.333)  # not 3.3329999999999997
    assert judge("v", 3.333, spec=spec).passed and not judge("v", 3.3331, spec=spec).passed
    assert judge("v", 3.267, spec=spec).passed and describe_limits(spec.as_dict) == "3.3 ± 1%"
    negative = table("measurements: {v: {nominal: -12, tolerance_percent: 5}}").specs["v"]
    assert (negative.low, negative.high) == (-12.6, -11.4)


def test_the_marginal_band_is_inclusive_as_openhtf_and_a_failure_is_not_marginal() -> None:
    spec = table(BOARD).specs["rail_5v"]
    results = {x: judge("rail_5v", x, spec=spec) for x in (4.9, 4.92, 4.93, 5.0, 5.07, 5.08, 5.2)}
    assert {x: (m.outcome, m.marginal) for x, m in results.items()} == {
        4.9: ("passed", True),
        4.92: ("passed", True),
        4.93: ("passed", False),
        5.0: ("passed", False),
        5.07: ("passed", False),
        5.08: ("passed", True),
        5.2: ("failed", False),
    }
    assert results[4.92].describe() == "rail_5v = 4.92 V, limits 5 ± 2%, marginal <= 4.92 or >= 5.08: passed, marginal"


def test_equality_keeps_bool_int_and_str_apart() -> None:
    specs = table(BOARD).specs
    assert judge("self_test", True, spec=specs["self_test"]).passed
    assert not judge("self_test", False, spec=specs["self_test"]).passed
    with pytest.raises(LimitTypeError, match="True or False, got 1"):
        judge("self_test", 1, spec=specs["self_test"])
    assert judge("channels", 4, spec=specs["channels"]).passed
    assert not judge("channels", 5, spec=specs["channels"]).passed
    for wrong in (True, 4.0, "4"):
        with pytest.raises(LimitTypeError, match="must equal an integer"):
            judge("channels", wrong, spec=specs["channels"])
    assert judge("fw_version", "1.4.2", spec=specs["fw_version"]).passed
    assert not judge("fw_version", "1.4.2 ", spec=specs["fw_version"]).passed
    with pytest.raises(LimitTypeError, match="must equal a string"):
        judge("fw_version", 142, spec=specs["fw_version"])


def test_nan_inf_and_wrong_types_against_a_file_range() -> None:
    spec = table(BOARD).specs["rail_3v3"]
    assert [judge("rail_3v3", x, spec=spec).outcome for x in (math.nan, math.inf, -math.inf)] == ["failed"] * 3
    for wrong in ("3.3", None, True, [3.3]):
        with pytest.raises(LimitTypeError, match="must be a number"):
            judge("rail_3v3", wrong, spec=spec)
    anything = judge("temperature", "hot", spec=table(BOARD).specs["temperature"])
    assert anything.passed and anything.units == "degC" and anything.limits == {"units": "degC", "source": "file"}


def test_the_event_fields_carry_limits_and_marginal_and_inline_limits_stay_as_they_were() -> None:
    spec = table(BOARD).specs["rail_3v3"]
    fields = judge("rail_3v3", 3.3, spec=spec).fields()
    assert (fields["low"], fields["high"], fields["units"], fields["marginal"]) == (3.2, 3.4, "V", False)
    assert fields["limits"] == {
        "low": 3.2,
        "high": 3.4,
        "low_inclusive": True,
        "high_inclusive": True,
        "units": "V",
        "source": "file",
    }
    fields["limits"]["low"] = 0  # an event's dict is its own: the spec is not changed
    assert spec.as_dict["low"] == 3.2
    with pytest.raises(TypeError, match="read-only"):  # the measurement's own is the spec's, shared, read-only
        judge("rail_3v3", 3.3, spec=spec).limits["low"] = 0  # type: ignore[index]
    assert spec.as_dict["low"] == 3.2
    inline = judge("v", 3.3, low=3.2, units="V").fields()
    assert inline["limits"] == {"low": 3.2, "low_inclusive": True, "high_inclusive": True, "source": "inline"}
    assert judge("v", 3.3).fields()["limits"] is None and judge("v", 3.3).describe() == "v = 3.3: passed"


@pytest.mark.parametrize(
    ("limits", "text"),
    [
        ({"low": 3.2, "high": 3.4}, "[3.2, 3.4]"),
        ({"low": 3.2, "high": 3.4, "low_inclusive": False}, "(3.2, 3.4]"),
        ({"low": 3.2, "high": 3.4, "high_inclusive": False}, "[3.2, 3.4)"),
        ({"nominal": 3.3, "tolerance_percent": 1.0, "low": 3.267, "high": 3.333}, "3.3 ± 1%"),
        ({"nominal": 3.3, "tolerance": 0.05}, "3.3 ± 0.05"),
        ({"equals": "OK"}, "== 'OK'"),
        ({"equals": False}, "== False"),
        ({"high": 5}, "<= 5"),
        ({"high": 5, "high_inclusive": False}, "< 5"),
        ({"low": 0.1, "low_inclusive": False}, "> 0.1"),
        ({"low": 3.3 * 1.01}, ">= 3.333"),
        ({"units": "V", "source": "file"}, "no limits"),
        (None, "no limits"),
        ({"low": 1, "high": 2, "marginal_high": 1.9}, "[1, 2], marginal >= 1.9"),
    ],
)
def test_describe_limits(limits: dict[str, Any] | None, text: str) -> None:
    assert describe_limits(limits) == text


def test_format_number() -> None:
    assert format_number(3.3 * 1.01) == "3.333" and format_number(1e-7) == "1e-07" and format_number(5) == "5"
    assert format_number(Fraction(1, 3)) == "0.333333333333" and format_number(True) == "True"
    assert format_number("x") == "'x'" and format_number(Fraction(10**400, 3)) == f"{10**400}/3"


# ---------------------------------------------------------------------- unlisted names and contradictions


def test_an_unlisted_name_is_an_error_unless_the_file_says_open() -> None:
    strict = table()
    with pytest.raises(LimitNotListed) as info:
        strict.spec_for("rail_12v", None, None, None)
    assert info.value.name == "rail_12v" and info.value.file == "/p/board.yaml"
    assert "'rail_12v' is not listed in the limits file /p/board.yaml" in str(info.value)
    assert "unlisted: open" in str(info.value)
    with pytest.raises(LimitNotListed):
        strict.spec_for("rail_12v", "V", 11.0, 13.0)  # inline limits do not make it listed
    assert table(BOARD + "unlisted: open\n").spec_for("rail_12v", None, 1, 2) is None


@pytest.mark.parametrize(
    ("name", "units", "low", "high", "problem"),
    [
        ("rail_3v3", None, 3.1, None, "inline low 3.1 given, the file says [3.2, 3.4]"),
        ("rail_3v3", None, None, 3.5, "inline high 3.5 given"),
        ("rail_3v3", "mV", None, None, "units 'mV' given, the file says 'V'"),
        ("leak", None, None, 10, "inline high 10 given, the file says < 10"),  # inclusive against exclusive
        ("fw_version", None, 1, None, "inline low given, the file says == '1.4.2'"),
        ("temperature", None, 0, None, "inline low 0 given, the file says no limits"),
        ("rail_5v", None, 4.9000000001, None, "inline low 4.9000000001 given"),
        ("rail_5v", None, 4.9 + 1e-15, None, "inline low 4.900000000000001 given"),  # prints like 4.9: repr
        ("rail_3v3", None, "3.2", None, "inline low '3.2' given"),
    ],
)
def test_inline_limits_that_contradict_the_file(name: str, units: Any, low: Any, high: Any, problem: str) -> None:
    with pytest.raises(LimitConflict) as info:
        table().spec_for(name, units, low, high)
    assert problem in str(info.value) and info.value.file == "/p/board.yaml" and repr(name) in str(info.value)


def test_inline_limits_that_agree_with_the_file_are_accepted() -> None:
    t = table()
    assert t.spec_for("rail_3v3", "V", 3.2, 3.4) is t.specs["rail_3v3"]
    assert t.spec_for("rail_3v3", None, 3.2, None) is t.specs["rail_3v3"]
    assert t.spec_for("rail_5v", None, 4.9, 5.1) is t.specs["rail_5v"]
    assert t.spec_for("temperature", "degC", None, None) is t.specs["temperature"]


# ---------------------------------------------------------------------- where the table comes from (connect)


def limits_file(project: Path, text: str = BOARD, name: str = "limits/board.yaml") -> Path:
    return write(project / name, text)


def started(**kw: Any) -> dict[str, Any]:
    from pytest_litmus import connect

    with connect("cell-7", mock=True, **kw) as station:
        station.measure("rail_3v3", 3.3)
        return station.events("SessionStarted")[0] | {"measurement": station.events("Measurement")[0]}


def test_connect_limits_argument_and_the_session_started_fields(project: Path) -> None:
    path = limits_file(project)
    event = started(limits="limits/board.yaml")
    assert event["limits_file"] == str(path.resolve())
    assert event["limits_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    m = event["measurement"]
    assert (m["outcome"], m["units"], m["low"], m["high"], m["limits"]["source"]) == ("passed", "V", 3.2, 3.4, "file")


def test_without_a_limits_file_measure_is_as_before(project: Path) -> None:
    event = started()
    assert event["limits_file"] is None and event["limits_sha256"] is None
    assert event["measurement"]["limits"] is None and event["measurement"]["outcome"] == "passed"


def test_precedence_option_then_station_file_then_litmus_yaml(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    station = project / "stations" / "cell-7.yaml"
    limits_file(project, "measurements: {rail_3v3: {high: 1}}\n", "project-limits.yaml")
    write(project / "litmus.yaml", "limits: project-limits.yaml\n")
    assert started()["limits_file"] == str(project / "project-limits.yaml")
    assert started()["measurement"]["outcome"] == "failed"
    station.write_text(station.read_text() + "limits:\n  measurements: {rail_3v3: {low: 3.25}}\n")
    own = started()  # the station file's own range, not litmus.yaml's
    assert own["limits_file"] == str(station) and own["measurement"]["outcome"] == "passed"
    assert own["limits_sha256"] == hashlib.sha256(station.read_bytes()).hexdigest()
    limits_file(project)
    monkeypatch.setenv("LITMUS_LIMITS", str(project / "limits" / "board.yaml"))
    assert started()["measurement"]["outcome"] == "passed"
    monkeypatch.setenv("LITMUS_LIMITS", "nowhere.yaml")
    with pytest.raises(StationConfigError, match="LITMUS_LIMITS: limits: expected an existing limits file"):
        started()
    monkeypatch.setenv("LITMUS_LIMITS", "")  # empty: not set
    assert started()["limits_file"] == str(station)


def test_litmus_yaml_inline_limits_and_bad_limits_keys(project: Path) -> None:
    litmus = write(project / "litmus.yaml", "limits:\n  measurements: {rail_3v3: {low: 3.2}}\n")
    assert started()["limits_file"] == str(litmus)
    write(project / "litmus.yaml", "limits:\n  measurements: {rail_3v3: {low: x}}\n")
    with pytest.raises(StationConfigError, match=r"litmus.yaml: limits.measurements.rail_3v3.low: expected a number"):
        started()
    for bad, expected in (
        ("limits: 5", "a mapping of limits, or the path"),
        ("limits: gone.yaml", "an existing limits file"),
    ):
        write(project / "litmus.yaml", bad + "\n")
        with pytest.raises(StationConfigError, match=expected):
            started()


def test_an_unlisted_name_and_a_contradiction_through_the_station(project: Path) -> None:
    from pytest_litmus import connect

    limits_file(project)
    with connect("cell-7", mock=True, limits="limits/board.yaml") as station:
        with pytest.raises(LimitNotListed, match=r"'rail_12v' is not listed in the limits file .*board\.yaml"):
            station.measure("rail_12v", 12.0)
        with pytest.raises(LimitConflict, match=r"inline high 3\.5 given"):
            station.measure("rail_3v3", 3.3, high=3.5)
        assert station.measure("rail_3v3", 3.3, units="V", low=3.2).passed
        assert len(station.events("Measurement")) == 1


def test_a_joined_station_judges_by_the_holders_table_and_refuses_a_changed_file(project: Path) -> None:
    from pytest_litmus import connect

    path = limits_file(project)
    with connect("cell-7", mock=True, limits=path) as holder:
        address = holder.start_instrument_server()  # type: ignore[attr-defined]
        with connect(server=address) as joined:  # loads the station file only: the table is the holder's
            assert joined.config.limits is not None and joined.config.limits.sha256 == holder.config.limits.sha256
            with pytest.raises(LimitNotListed):
                joined.measure("rail_12v", 12.0)
            assert joined.measure("rail_3v3", 3.5).outcome == "failed"
        with pytest.raises(Exception, match="judges by its holder's limits"):
            connect(server=address, limits=project / "other.yaml")
        path.write_text(BOARD + "  extra: {}\n")
        with pytest.raises(StationConfigError, match="the file changed since"):
            connect(server=address)
    with connect("cell-7", mock=True) as holder:  # a holder without limits: a joiner's own are dropped
        from pytest_litmus.sharing import JoinedStation
        from pytest_litmus.sharing.files import find_server_info

        address = holder.start_instrument_server()  # type: ignore[attr-defined]
        config = holder.config.__class__(**{**holder.config.__dict__, "limits": load_limits(path)})
        joined = JoinedStation(find_server_info(address, None), config=config)
        assert joined.config.limits is None


# ---------------------------------------------------------------------- the plugin

TESTS = """
def test_rails(measure):
    measure("rail_3v3", 3.3)
    measure("rail_5v", 5.09)
    measure("leak", 10.0)

def test_unlisted(measure):
    measure("rail_12v", 12.0)

def test_contradiction(measure):
    measure("rail_3v3", 3.3, low=3.0, high=3.6)
"""


def test_plugin_limits_option(station_project: pytest.Pytester) -> None:
    limits_file(station_project.path)
    station_project.makepyfile(TESTS)
    result = station_project.runpytest("--station", "cell-7", "--mock", "--limits", "limits/board.yaml")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "leak = 10 uA, limits < 10: at the exclusive high (test_plugin_limits_option.py:*)",
            "*LimitNotListed: measurement 'rail_12v' is not listed in the limits file *board.yaml*",
            "*LimitConflict: measurement 'rail_3v3': inline low 3 given, the file says ?3.2, 3.4? (limits file *",
        ]
    )
    events = session_events(station_project)
    started = events[0]
    assert started["limits_file"] == str(station_project.path / "limits" / "board.yaml")
    measured = {e["name"]: e for e in events if e["type"] == "Measurement"}
    assert set(measured) == {"rail_3v3", "rail_5v", "leak"}
    assert (measured["rail_5v"]["outcome"], measured["rail_5v"]["marginal"]) == ("passed", True)
    assert measured["leak"]["limits"]["high_inclusive"] is False


def test_plugin_station_file_limits_ini_and_help(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    station = station_project.path / "stations" / "cell-7.yaml"
    station.write_text(station.read_text() + "limits: ../limits/board.yaml\n")
    limits_file(station_project.path)
    station_project.makepyfile("def test_rail(measure):\n    assert measure('rail_3v3', 3.3).limits['low'] == 3.2\n")
    station_project.runpytest("--station", "cell-7", "--mock").assert_outcomes(passed=1)
    # the ini door: a path relative to the ini file (not to where pytest runs), and it beats the station file's
    write(station_project.path / "strict.yaml", "measurements: {rail_3v3: {high: 1}}\n")
    station_project.makeini("[pytest]\nlitmus_limits = strict.yaml\n")
    monkeypatch.chdir(station_project.mkdir("sub"))
    result = station_project.runpytest("--station", "cell-7", "--mock", str(station_project.path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["rail_3v3 = 3.3, limits <= 1: failed"])
    helped = station_project.runpytest("--help")
    helped.stdout.fnmatch_lines(
        ["*--limits=PATH*limits file that measure() judges by*", "*LITMUS_LIMITS*", "*litmus_limits (string):*"]
    )


def test_plugin_bad_limits_file_is_a_usage_error_before_any_test(station_project: pytest.Pytester) -> None:
    write(station_project.path / "bad.yaml", "measurements: {rail_3v3: {low: 3.4, high: 3.2}}\n")
    station_project.makepyfile("def test_x(): pass")
    result = station_project.runpytest("--station", "cell-7", "--mock", "--limits", "bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.yaml: measurements.rail_3v3.low: expected at most high (3.2), got 3.4"])
    assert not (station_project.path / "home" / "sessions").exists()


def test_plugin_workers_judge_by_the_same_table(station_project: pytest.Pytester) -> None:
    limits_file(station_project.path)
    station_project.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_rail(measure, n):
            measure("rail_3v3", 3.3 + n / 10)
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "--limits", "limits/board.yaml", "-n", "2")
    result.assert_outcomes(passed=2, failed=2)
    events = session_events(station_project)
    measured = [e for e in events if e["type"] == "Measurement"]
    assert len(measured) == 4 and {e["caller"]["worker"] for e in measured} <= {"gw0", "gw1"}
    assert all(e["limits"]["source"] == "file" for e in measured)
    assert json.dumps(events[0]["limits_sha256"]) != "null"


# ---------------------------------------------------------------------- the cache of checked tables


def test_the_cache_skips_yaml_for_content_seen_before_and_trusts_only_this_users_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_litmus.limits as limits_module

    path = write(tmp_path / "board.yaml", BOARD)
    cache = tmp_path / "data" / "cache" / "limits"
    (tmp_path / "data").mkdir()
    first = load_limits(path, cache=cache)
    (kept,) = cache.iterdir()
    assert kept.name == f"{first.sha256}.json" and kept.stat().st_mode & 0o777 == 0o600

    def no_yaml(path: Any) -> Any:
        raise AssertionError("parsed the YAML again")

    monkeypatch.setattr(limits_module, "read_yaml_digest", no_yaml)
    again = load_limits(path, cache=cache)
    assert again.specs == first.specs and again.sha256 == first.sha256 and again.path == first.path
    assert again.specs["rail_5v"].as_dict == first.specs["rail_5v"].as_dict
    for spoil in (
        lambda: kept.chmod(0o666),
        lambda: kept.write_text("{not json"),
        lambda: path.write_text(BOARD + "\n"),
    ):
        monkeypatch.undo()
        load_limits(path, cache=cache)  # (re)writes a good entry for the current content
        spoil()
        monkeypatch.setattr(limits_module, "read_yaml_digest", no_yaml)
        with pytest.raises(AssertionError, match="parsed the YAML again"):
            load_limits(path, cache=cache)
    monkeypatch.undo()
    assert load_limits(path, cache=tmp_path / "no-data-dir" / "cache" / "limits").sha256  # nothing kept, no error
    assert not (tmp_path / "no-data-dir").exists()


def test_the_docs_show_the_example_limits_file_as_it_is() -> None:
    from docblocks import REPO, parse

    (shown,) = [b for b in parse(REPO / "docs" / "limits.md") if b.kind == "limits"]
    assert shown.text == (REPO / "examples" / "limits" / "power-board.yaml").read_text()


@pytest.mark.parametrize(
    ("low", "high", "limits"),
    [
        (3.2, 3.4, {"low": 3.2, "high": 3.4, "low_inclusive": True, "high_inclusive": True, "source": "inline"}),
        (-0.0, 1.0, {"low": -0.0, "high": 1.0}),
        (0.0, 1.0, {"low": 0.0, "high": 1.0}),
        (0, 1, {"low": 0, "high": 1}),
        (None, 5.0, {"high": 5.0, "high_inclusive": False}),
        (None, None, None),
        (None, None, {"equals": ["a", "b"]}),  # unhashable: not cached, still right
        (Fraction(1, 3), None, {"low": Fraction(1, 3)}),
        (1e300, float("inf"), {"nominal": 5.0, "tolerance_percent": 2}),
    ],
)
def test_limit_texts_are_what_the_formatters_print_also_from_the_cache(low: Any, high: Any, limits: Any) -> None:
    from pytest_litmus.limits import describe_limits, format_number, limit_texts

    expected = (
        "" if low is None else format_number(low),
        "" if high is None else format_number(high),
        describe_limits(limits) if limits else None,
    )
    assert limit_texts(low, high, limits) == expected
    assert limit_texts(low, high, limits) == expected  # the second answer comes from the cache


def test_limit_texts_keep_the_sign_of_zero_apart() -> None:
    from pytest_litmus.limits import limit_texts

    assert limit_texts(0.0, None, None)[0] == "0"
    assert limit_texts(-0.0, None, None)[0] == "-0"
    assert limit_texts(0.0, None, None)[0] == "0"


def test_format_number_fast_path_agrees_with_the_general_one() -> None:
    from pytest_litmus.limits import format_number

    class MyFloat(float):
        pass

    for x in (3.3 * 1.01, -0.0, 1e-300, float("nan"), 123456789012345.0):
        assert format_number(x) == format_number(MyFloat(x)) == format(x, ".12g")


def test_limit_texts_tell_equal_limits_of_another_type_apart() -> None:
    from pytest_litmus.limittext import describe_limits, limit_texts

    for limits in ({"equals": 1}, {"equals": True}, {"equals": 1.0}, {"nominal": -0.0, "tolerance": 1.0}):
        assert limit_texts(None, None, limits)[2] == describe_limits(limits), limits
    assert limit_texts(None, None, {"nominal": 0.0, "tolerance": 1.0})[2] == "0 ± 1"
    assert limit_texts(None, None, {"nominal": -0.0, "tolerance": 1.0})[2] == "-0 ± 1"


_BOUNDS = [None, 0.0, -0.0, 1.0, 3.2, 3.4, -2.5, 1e300]
_VALUES = [3.3, 3.2, 3.4, 0.0, -0.0, 7, 0, -1, float("nan"), float("inf"), float("-inf"), 10**400]


def test_inline_limits_judged_again_give_what_the_first_judgement_gave() -> None:
    """Judging against inline bounds seen before takes a shortcut: it must agree with the full check."""
    from pytest_litmus import measurements
    from pytest_litmus.measurements import judge

    for low in _BOUNDS:
        for high in _BOUNDS:
            if low is not None and high is not None and low > high:
                continue
            for value in _VALUES:
                measurements._INLINE.clear()
                first = judge("v", value, units="V", low=low, high=high, nodeid="n", where="w:1")
                again = judge("v", value, units="V", low=low, high=high, nodeid="n", where="w:1")
                assert again == first and again.outcome == first.outcome, (low, high, value)
                assert repr(again.limits) == repr(first.limits) and repr(again) == repr(first), (low, high, value)


def test_the_inline_shortcut_still_refuses_what_the_full_check_refuses() -> None:
    from pytest_litmus.errors import LimitError
    from pytest_litmus.measurements import judge

    judge("v", 1.0, low=1.0, high=2.0)  # (1.0, 2.0) now known
    with pytest.raises(LimitTypeError):
        judge("v", 1.0, low=True, high=2.0)  # True == 1.0, but a bool is no limit
    with pytest.raises(LimitTypeError):
        judge("v", True, low=1.0, high=2.0)
    with pytest.raises(LimitTypeError):
        judge("v", "1.5", low=1.0, high=2.0)
    with pytest.raises(ValueError, match="non-empty string"):
        judge("", 1.5, low=1.0, high=2.0)
    with pytest.raises(LimitError, match="above high"):
        judge("v", 1.5, low=2.0, high=1.0)
    assert judge("v", 2, low=1.0, high=2.0).passed and not judge("v", 3, low=1.0, high=2.0).passed


def test_a_measurements_limits_are_read_only_and_copies_are_plain_dicts() -> None:
    import copy
    import dataclasses
    import json
    import pickle

    from pytest_litmus.limittext import LimitsDict
    from pytest_litmus.measurements import judge

    m = judge("v", 1.5, low=1.0, high=2.0)
    limits = m.limits
    assert isinstance(limits, dict) and type(limits) is LimitsDict
    assert judge("v", 1.7, low=1.0, high=2.0).limits is limits  # shared by the measurements judged against it
    expected = {"low": 1.0, "high": 2.0, "low_inclusive": True, "high_inclusive": True, "source": "inline"}
    for change in (
        lambda d: d.__setitem__("low", 0.0),
        lambda d: d.__delitem__("low"),
        lambda d: d.update(low=0.0),
        lambda d: d.pop("low"),
        lambda d: d.popitem(),
        lambda d: d.setdefault("x", 1),
        lambda d: d.clear(),
        lambda d: d.__ior__({"low": 0.0}),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change(limits)
    assert limits == expected and json.loads(json.dumps(limits)) == expected
    for made in (
        dict(limits),
        copy.copy(limits),
        copy.deepcopy(limits),
        pickle.loads(pickle.dumps(limits)),
        limits | {},
    ):
        assert type(made) is dict and made == expected
        made["low"] = 0.0  # a copy is the caller's own
    assert dataclasses.asdict(m)["limits"] == expected
    assert pickle.loads(pickle.dumps(m)) == m and m.fields()["limits"] == expected
    assert type(m.fields()["limits"]) is dict  # an event's dict is its own
