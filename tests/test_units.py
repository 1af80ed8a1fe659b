"""The unit under test and attempts: --dut, the litmus_dut hook, dut_pattern, unit attempts, reruns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus.dut import Dut, parse_serials, resolve_units, slot_dut
from pytest_litmus.units import attempts_of, next_attempt, unit_index
from tests.plugincases import session_events

MEASURED = """
def test_rail(measure, dut):
    measure("rail_3v3", 3.3, units="V", low=3.2, high=3.4)
    assert dut is None or dut.serial
"""


def _sessions(pytester: pytest.Pytester) -> list[list[dict[str, Any]]]:
    """Every session of the run's data dir, oldest first, as event lists."""
    from pytest_litmus.events import read_session

    logs = [read_session(p) for p in (pytester.path / "home" / "sessions").glob("*/events.jsonl")]
    return [log.events for log in sorted(logs, key=lambda log: log.events[0]["ts"])]


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (["--dut", "SN-0001", "--dut-part", "PCB-7"], {}, ""),
        ([], {"LITMUS_DUT": "SN-0001", "LITMUS_DUT_PART": "PCB-7"}, ""),
        ([], {}, "[pytest]\nlitmus_dut = SN-0001\nlitmus_dut_part = PCB-7\n"),
    ],
    ids=["option", "env", "ini"],
)
def test_the_dut_is_on_the_session_the_unit_and_every_measurement_and_outcome(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], ini: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        station_project.makefile(".ini", pytest=ini)
    station_project.makepyfile(
        MEASURED
        + """
def test_fixture(dut):
    assert (dut.serial, dut.part, dut.attempt) == ("SN-0001", "PCB-7", 1)
"""
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", *args)
    result.assert_outcomes(passed=2)
    events = session_events(station_project)
    (started,) = _of(events, "SessionStarted")
    assert (started["dut"], started["dut_part"], started["unit_attempt"]) == ("SN-0001", "PCB-7", 1)
    (unit,) = _of(events, "UnitStarted")
    assert (unit["dut"], unit["dut_part"], unit["unit_attempt"], unit["slot"]) == ("SN-0001", "PCB-7", 1, "main")
    for kind in ("Measurement", "TestStarted", "TestOutcome"):
        assert {(e["dut"], e["attempt"]) for e in _of(events, kind)} == {("SN-0001", 1)}, kind


def test_without_a_dut_the_fields_are_null_and_no_unit_is_recorded(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(MEASURED)
    station_project.runpytest("--station", "cell-7", "--mock").assert_outcomes(passed=1)
    events = session_events(station_project)
    assert _of(events, "SessionStarted")[0]["dut"] is None
    assert not _of(events, "UnitStarted")
    assert _of(events, "Measurement")[0]["dut"] is None
    assert not (station_project.path / "home" / "units").exists()


def test_a_unit_tested_again_gets_the_next_unit_attempt(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(MEASURED)
    for _ in range(3):
        station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-9").assert_outcomes(passed=1)
    station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-10").assert_outcomes(passed=1)
    started = [_of(events, "SessionStarted")[0] for events in _sessions(station_project)]
    assert [(s["dut"], s["unit_attempt"]) for s in started] == [("SN-9", 1), ("SN-9", 2), ("SN-9", 3), ("SN-10", 1)]
    home = station_project.path / "home"
    assert [a.attempt for a in attempts_of(home, "SN-9")] == [1, 2, 3]
    assert [a.session for a in attempts_of(home, "SN-9")] == [s["session"] for s in started[:3]]


@pytest.mark.parametrize(
    ("where", "text"),
    [("station", "dut_pattern: 'SN-[0-9]{4}'\n"), ("project", "dut_pattern: 'SN-[0-9]{4}'\n")],
)
def test_a_serial_that_does_not_match_dut_pattern_stops_the_run_before_anything_is_touched(
    station_project: pytest.Pytester, where: str, text: str
) -> None:
    target = station_project.path / ("stations/cell-7.yaml" if where == "station" else "litmus.yaml")
    target.write_text((target.read_text() if target.exists() else "") + text)
    station_project.makepyfile(MEASURED)
    result = station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-12")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--dut: dut: expected a serial number matching dut_pattern 'SN-[[]0-9]{4}'*got 'SN-12'"]
    )
    assert not (station_project.path / "home" / "sessions").exists()
    ok = station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-0012")
    ok.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("'SN-['", "a valid regular expression"), ("42", "a regular expression (text)"), ("''", "a regular expression")],
)
def test_a_bad_dut_pattern_names_the_file_and_key(
    station_project: pytest.Pytester, pattern: str, expected: str
) -> None:
    station = station_project.path / "stations" / "cell-7.yaml"
    station.write_text(station.read_text() + f"dut_pattern: {pattern}\n")
    station_project.makepyfile(MEASURED)
    result = station_project.runpytest("--station", "cell-7", "--mock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*cell-7.yaml: dut_pattern: expected {expected}*"])


@pytest.mark.parametrize(
    "serial",
    ["", "   ", "SN\x1b1", "SN\n2", "A,A", "x" * 129],
    ids=["empty", "blank", "escape", "newline", "twice", "long"],
)
def test_a_bad_serial_is_a_usage_error_naming_its_door(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, serial: str
) -> None:
    monkeypatch.setenv("LITMUS_DUT", serial)
    station_project.makepyfile(MEASURED)
    result = station_project.runpytest("--station", "cell-7", "--mock")
    if not serial.strip():  # an empty variable is an unset one, as for every setting
        result.assert_outcomes(passed=1)
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable LITMUS_DUT: dut: expected *"])


def test_the_litmus_dut_hook_supplies_the_unit_and_may_prompt(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(
        """
from pytest_litmus.dut import Dut

def litmus_dut(station, slot):
    serial = input("scan the unit: ")  # capture is off while the hook runs
    return {"serial": serial, "part": station.upper() + "-" + slot}
"""
    )
    station_project.makepyfile(MEASURED)
    result = station_project.run(
        sys.executable, "-m", "pytest", "-p", "pytester", "--station", "cell-7", "--mock", stdin=b"  SN-77\r\n"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*scan the unit: *"])
    (started,) = _of(session_events(station_project), "SessionStarted")
    assert (started["dut"], started["dut_part"]) == ("SN-77", "CELL-7-main")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise OSError('scanner unplugged')", "the litmus_dut hook raised OSError: scanner unplugged"),
        ("return 42", "the litmus_dut hook (slot main) answered 42: expected a serial*"),
        ("return {'serial': 'A', 'lot': 'x'}", "*unknown keys ?'lot'?*"),
        ("return 'bad,serial'", "*must not contain control characters or commas*"),
    ],
    ids=["raises", "wrong-type", "unknown-key", "comma"],
)
def test_a_failing_or_wrong_litmus_dut_hook_stops_the_run_saying_so(
    station_project: pytest.Pytester, body: str, message: str
) -> None:
    station_project.makeconftest(f"def litmus_dut(station, slot):\n    {body}\n")
    station_project.makepyfile(MEASURED)
    result = station_project.runpytest("--station", "cell-7", "--mock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_the_option_wins_over_the_hook(station_project: pytest.Pytester) -> None:
    station_project.makeconftest("def litmus_dut(station, slot):\n    raise AssertionError('not asked')\n")
    station_project.makepyfile(MEASURED)
    station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-1").assert_outcomes(passed=1)


def test_connect_takes_the_dut_from_its_argument_or_litmus_dut(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_litmus import connect

    with connect("cell-7", mock=True, dut="SN-5", dut_part="P") as station:
        assert station.dut == Dut("SN-5", "P", 1)
        station.measure("v", 1.0)
    monkeypatch.setenv("LITMUS_DUT", "SN-5")
    with connect("cell-7", mock=True) as station:
        assert station.dut == Dut("SN-5", None, 2)
        station.measure("v", 1.0)
        (m,) = station.events("Measurement")
        assert (m["dut"], m["attempt"]) == ("SN-5", 1)


def test_connect_refuses_two_serials_for_one_slot(project: Path) -> None:
    from pytest_litmus import connect
    from pytest_litmus.errors import StationConfigError

    with pytest.raises(StationConfigError, match=r"expected one serial for every slot, or one per slot \(1: main\)"):
        connect("cell-7", mock=True, dut="SN-1,SN-2")


# ----------------------------------------------------------------------------- several units (xdist)


def test_one_unit_per_xdist_worker(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
import pytest

@pytest.mark.parametrize("i", range(6))
def test_rail(measure, dut, i):
    measure("rail_3v3", 3.3, units="V", low=3.2, high=3.4)
    assert dut.serial in ("SN-A", "SN-B") and dut.attempt == 1
"""
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "2", "--dut", "SN-A,SN-B")
    result.assert_outcomes(passed=6)
    events = session_events(station_project)
    assert _of(events, "SessionStarted")[0]["dut"] is None  # two units: each its own UnitStarted
    units = {e["slot"]: e["dut"] for e in _of(events, "UnitStarted")}
    assert units == {"gw0": "SN-A", "gw1": "SN-B"}
    by_worker = {(e["caller"]["worker"], e["dut"]) for e in _of(events, "Measurement")}
    assert by_worker <= {("gw0", "SN-A"), ("gw1", "SN-B")}


def test_serials_that_do_not_fit_the_workers_are_a_usage_error(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(MEASURED)
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "2", "--dut", "A,B,C")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--dut: dut: expected one serial for every slot, or one per slot (2: gw0, gw1), got 'A,B,C'"]
    )


# ----------------------------------------------------------------------------- attempts (reruns)

FLAKY = """
import pytest

def test_flaky(measure, request):
    cache = request.config.rootpath / "tries"
    tries = int(cache.read_text()) + 1 if cache.exists() else 1
    cache.write_text(str(tries))
    measure("rail_3v3", 3.3 if tries == 3 else 3.9, units="V", low=3.2, high=3.4)
    measure("try", tries)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["plain", "xdist"])
def test_reruns_are_attempts_and_only_the_last_one_counts(station_project: pytest.Pytester, xdist: list[str]) -> None:
    station_project.makepyfile(FLAKY)
    result = station_project.runpytest(
        "--station", "cell-7", "--mock", "--dut", "SN-3", "--reruns", "2", "--junitxml", "out.xml", *xdist
    )
    assert result.parseoutcomes().items() >= {"passed": 1, "rerun": 2}.items()
    events = session_events(station_project)
    outcomes = [(e["outcome"], e["attempt"], e["dut"]) for e in _of(events, "TestOutcome")]
    assert outcomes == [("rerun", 1, "SN-3"), ("rerun", 2, "SN-3"), ("passed", 3, "SN-3")]
    assert [e["attempt"] for e in _of(events, "TestStarted")] == [1, 2, 3]
    measured = [(e["name"], e["value"], e["attempt"], e["outcome"]) for e in _of(events, "Measurement")]
    assert measured == [
        ("rail_3v3", 3.9, 1, "failed"),
        ("try", 1, 1, "passed"),
        ("rail_3v3", 3.9, 2, "failed"),
        ("try", 2, 2, "passed"),
        ("rail_3v3", 3.3, 3, "passed"),
        ("try", 3, 3, "passed"),
    ]
    (ended,) = _of(events, "SessionEnded")
    counts = ended["counts"]
    assert counts["passed"] == 1 and counts["rerun"] == 2
    assert counts["measurements_passed"] == 2 and "measurements_failed" not in counts
    assert counts["measurements_superseded"] == 4
    xml = (station_project.path / "out.xml").read_text()
    assert xml.count('name="measurement.rail_3v3"') == 1
    assert 'name="measurement.try" value="3"' in xml


def test_a_test_that_fails_every_attempt_reports_the_last_attempts_measurements(
    station_project: pytest.Pytester,
) -> None:
    station_project.makepyfile(
        """
def test_dead(measure, request):
    measure("rail_3v3", 0.0, units="V", low=3.2, high=3.4)
"""
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "--reruns", "1")
    assert result.parseoutcomes().items() >= {"failed": 1, "rerun": 1}.items()
    result.stdout.fnmatch_lines(["rail_3v3 = 0 V, limits ?3.2, 3.4?: 3.2 V below low (*.py:2)"])
    assert "more out of limits" not in result.stdout.str()  # the first attempt's measurement is not counted
    outcomes = [(e["outcome"], e["attempt"]) for e in _of(session_events(station_project), "TestOutcome")]
    assert outcomes == [("rerun", 1), ("failed", 2)]


# ----------------------------------------------------------------------------- the unit index


@pytest.mark.parametrize(
    "serial", ["../../etc/passwd", ".", "..", "a/b\\c", "SN 1", "é" * 128, "con", "x" * 128], ids=repr
)
def test_every_serial_maps_to_one_file_inside_the_units_directory(tmp_path: Path, serial: str) -> None:
    path = unit_index(tmp_path, serial)
    assert path.parent == tmp_path / "units" and len(path.name) <= 255 and not path.name.startswith(".")
    assert next_attempt(tmp_path, serial, "s1", station="cell-7", slot="main") == 1
    assert next_attempt(tmp_path, serial, "s2", station="cell-7", slot="main") == 2
    assert [a.session for a in attempts_of(tmp_path, serial)] == ["s1", "s2"]
    assert sorted(p.name for p in (tmp_path / "units").iterdir() if not p.name.endswith(".lock")) == [path.name]


def test_serials_differing_in_case_keep_their_own_numbers_in_one_file(tmp_path: Path) -> None:
    # on a case-insensitive file system these two share a file: the lines keep them apart
    assert next_attempt(tmp_path, "sn-1", "s1", station=None, slot=None) == 1
    path = unit_index(tmp_path, "sn-1")
    other = json.dumps({"serial": "SN-1", "attempt": 7, "session": "x", "ts": 1.0})
    path.write_text(path.read_text() + other + "\n")
    assert next_attempt(tmp_path, "sn-1", "s2", station=None, slot=None) == 2


def test_a_damaged_index_never_repeats_an_attempt_number(tmp_path: Path) -> None:
    next_attempt(tmp_path, "SN", "s1", station=None, slot=None)
    next_attempt(tmp_path, "SN", "s2", station=None, slot=None)
    path = unit_index(tmp_path, "SN")
    path.write_bytes(path.read_bytes() + b'{"serial": "SN", "attempt": 3, "sess')  # a torn last line
    path.write_bytes(path.read_bytes().replace(b'"attempt": 1', b'"attempt": "one"') + b"\xff\xfe garbage\n")
    assert next_attempt(tmp_path, "SN", "s3", station=None, slot=None) == 3
    assert [a.attempt for a in attempts_of(tmp_path, "SN")] == [2, 3]


def test_concurrent_sessions_never_get_the_same_unit_attempt(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from pytest_litmus.units import next_attempt\n"
        "print(*(next_attempt(Path(sys.argv[1]), 'SN-RACE', f'{sys.argv[2]}-{i}', station=None, slot=None)"
        " for i in range(25)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n)], stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    numbers = [int(x) for p in procs for x in p.communicate()[0].split()]
    assert sorted(numbers) == list(range(1, 101))


def test_an_unwritable_unit_index_stops_the_session_before_it_starts(project: Path) -> None:
    from pytest_litmus import connect
    from pytest_litmus.errors import UnitIndexError

    (project / "home").mkdir()
    (project / "home" / "units").write_text("a file where the index directory belongs")  # fails for root too
    station = connect("cell-7", mock=True, dut="SN-1")
    with pytest.raises(UnitIndexError) as caught:
        station.start()
    assert caught.value.serial == "SN-1" and "units" in caught.value.path
    assert not station.started
    assert not (project / "home" / "sessions").exists()


# ----------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("text", "expected"),
    [("SN1", ("SN1",)), (" SN1 , SN2 ", ("SN1", "SN2")), ("SN1\r\n", ("SN1",))],
)
def test_parse_serials(text: str, expected: tuple[str, ...]) -> None:
    assert parse_serials(text) == expected


@pytest.mark.parametrize("text", ["", "A,,B", "A,A", 5, None, "A\tB"])
def test_parse_serials_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_serials(text)


def test_slot_dut_one_serial_is_every_slots_unit() -> None:
    assert slot_dut(("A",), "P", "gw1", ["gw0", "gw1"]) == Dut("A", "P")
    assert slot_dut(("A", "B"), None, "gw1", ["gw0", "gw1"]) == Dut("B")
    assert slot_dut((), None, "main", ["main"]) is None


def test_resolve_units_asks_only_without_serials() -> None:
    asked: list[str] = []

    def ask(slot: str) -> object:
        asked.append(slot)
        return None if slot == "gw1" else Dut(f"S-{slot}", None)

    assert resolve_units((), "P", None, ["gw0", "gw1"], ask) == {"gw0": Dut("S-gw0", "P"), "gw1": None}
    assert asked == ["gw0", "gw1"]
    assert resolve_units(("X",), None, None, ["main"], ask) == {"main": Dut("X")}
    assert asked == ["gw0", "gw1"]


def test_junit_carries_station_session_and_dut_and_prints_limits_as_the_terminal(
    station_project: pytest.Pytester,
) -> None:
    station_project.makepyfile(
        """
def test_rail(measure):
    measure("rail_3v3", 3.3, units="V", low=3.3 * 0.99, high=3.3 * 1.01)
"""
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "--dut", "SN-8", "--junitxml", "out.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["litmus: unit SN-8, unit attempt 1 ?--dut?"])
    import xml.etree.ElementTree as ET

    root = ET.parse(station_project.path / "out.xml").getroot()
    suite = {p.get("name"): p.get("value") for p in root.iter("testsuite") for p in p.findall("properties/property")}
    session = _of(session_events(station_project), "SessionStarted")[0]["session"]
    assert suite == {"litmus.station": "cell-7", "litmus.session": session, "litmus.dut": "SN-8"}
    case = {p.get("name"): p.get("value") for p in root.iter("testcase") for p in p.findall("properties/property")}
    assert case["measurement.rail_3v3.low"] == "3.267" and case["measurement.rail_3v3.high"] == "3.333"
    assert case["measurement.rail_3v3.limits"] == "[3.267, 3.333]"


def test_the_examples_run_with_a_dut(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.conftest import REPO

    for name in ("stations", "examples"):
        shutil.copytree(REPO / name, pytester.path / name)
    monkeypatch.setenv("LITMUS_HOME", str(pytester.path / "home"))
    result = pytester.runpytest_subprocess("examples", "--station", "cell-7", "--mock", "--dut", "SN-0042")
    assert result.ret == 0
    events = session_events(pytester)
    measured = _of(events, "Measurement")
    assert measured and {e["dut"] for e in measured} == {"SN-0042"}
    assert {e["dut"] for e in _of(events, "TestOutcome")} == {"SN-0042"}
