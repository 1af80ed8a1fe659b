"""Exports of a session record: CSV, JUnit XML, OpenHTF JSON (checked against OpenHTF's own data model)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from recordhelpers import Events, m

from pytest_litmus import connect
from pytest_litmus.export import csv as csv_export
from pytest_litmus.export import junit, openhtf
from pytest_litmus.limits import format_number
from pytest_litmus.records import SessionRecord, read_record

NODE = "tests/test_board.py::TestRails::test_rail[3v3]"
#: Characters an adversary puts in names and values: control characters, XML's CDATA end, a non-BMP
#: character, a lone surrogate (JSON lets an event line hold one: "\ud800"), quotes and separators.
WEIRD = 'a\x00b\x1b[31m\r\n"q",]]>&<x> 𝄞 \ud800'


def _rerun_session(tmp_path: Path) -> SessionRecord:
    """SN1: a test failed then passed on its rerun (limits 3.3 +1%), another failed outright."""
    ev = Events(tmp_path).started("SN1", dut_part="PCB-7", unit_attempt=2)
    ev.test(NODE, "rerun", m(value=3.6, outcome="failed", units="V"), dut="SN1", attempt=1)
    limits = {"low": 3.2, "high": 3.3 * 1.01, "low_inclusive": True, "high_inclusive": True, "source": "file"}
    ev.test(NODE, "passed", m(value=3.3, units="V", high=3.3 * 1.01, limits=limits), dut="SN1", attempt=2)
    ev.test("tests/test_board.py::test_mode", "failed", m(name="mode", value="BAD", outcome="failed", units=None,
            low=None, high=None, limits={"equals": "OK"}), dut="SN1")  # fmt: skip
    ev.add("TestOutcome", nodeid="tests/test_board.py::test_mode", outcome="failed", dut="SN1", attempt=1,
           message="mode = 'BAD', limits == 'OK'\nmore")  # fmt: skip
    return read_record(ev.ended("failed").write())


def _weird_session(tmp_path: Path) -> SessionRecord:
    ev = Events(tmp_path).started(WEIRD, station=WEIRD)
    ev.test(WEIRD, "failed", m(name=WEIRD, value=WEIRD, units=WEIRD, low=None, high=None), dut=WEIRD)
    return read_record(ev.ended().write())


# --------------------------------------------------------------------------- limits text


def _limits_text(tmp_path: Path, **fields: Any) -> str:
    ev = Events(tmp_path).started("SN1")
    ev.test(NODE, "passed", m(**fields), dut="SN1")
    (unit,) = read_record(ev.ended().write()).units
    return unit.tests[0].measurements[0].limits_text


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"low": 3.2, "high": 3.3 * 1.01}, "[3.2, 3.333]"),  # an event without a limits dict: its low/high
        ({"limits": {"low": 3.2, "high": 3.4, "low_inclusive": False}}, "(3.2, 3.4]"),
        ({"limits": {"nominal": 3.3, "tolerance_percent": 1}}, "3.3 ± 1%"),
        ({"limits": {"equals": "OK"}}, "== 'OK'"),
        ({"low": None, "high": 5}, "<= 5"),
        ({"limits": {"low": 1, "high": 2, "marginal_high": 1.9}}, "[1, 2], marginal >= 1.9"),
        ({"low": None, "high": None}, ""),  # no limits: an empty cell
        ({"low": None, "high": None, "limits": {}}, ""),
        # an adversary's limits: a bound that is not a finite number is none, a flag that is not a bool is dropped
        ({"low": None, "high": None, "limits": {"low": "x", "high": None}}, ""),
        ({"limits": {"low": 1, "high": [2], "low_inclusive": "no"}}, ">= 1"),
        ({"low": None, "high": None, "limits": {"low": float("nan"), "high": True}}, ""),
    ],
)
def test_limits_print_as_the_terminal_prints_them(tmp_path: Path, fields: dict[str, Any], text: str) -> None:
    assert format_number(3.3 * 1.01) == "3.333" and format_number(1e-12) == "1e-12" and format_number(5) == "5"
    assert _limits_text(tmp_path, **fields) == text


# --------------------------------------------------------------------------- CSV


def _csv(record: SessionRecord) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_export.render(record), newline="")))


def test_csv_of_a_real_session(project: Path, tmp_path: Path) -> None:
    with connect("cell-7", data_dir=tmp_path / "data", mock=True) as station:
        station.test_started("tests/test_a.py::test_rail")
        station.measure("rail_3v3", 3.3 * 1.0001, units="V", low=3.2, high=3.3 * 1.01)
        station.test_finished("tests/test_a.py::test_rail", "passed", 0.1, None)
        path, session = station.event_log, station.session_id
    (row,) = _csv(read_record(path))
    assert list(row) == list(csv_export.COLUMNS)
    assert row | {"time": "-"} == {
        "session": session, "dut": "", "test": "tests/test_a.py::test_rail", "attempt": "1", "superseded": "false",
        "name": "rail_3v3", "value": repr(3.3 * 1.0001), "units": "V", "low": "3.2", "high": "3.333",
        "limits": "[3.2, 3.333]", "outcome": "passed", "marginal": "false", "time": "-",
    }  # fmt: skip
    assert row["time"].endswith("+00:00") and row["time"][:4].isdigit()


def test_csv_marks_superseded_attempts(tmp_path: Path) -> None:
    rows = _csv(_rerun_session(tmp_path))
    assert [(r["test"], r["attempt"], r["superseded"], r["value"], r["outcome"], r["limits"]) for r in rows] == [
        (NODE, "1", "true", "3.6", "failed", "[3.2, 3.4]"),
        (NODE, "2", "false", "3.3", "passed", "[3.2, 3.333]"),
        ("tests/test_board.py::test_mode", "1", "false", "BAD", "failed", "== 'OK'"),
    ]
    assert {r["dut"] for r in rows} == {"SN1"} and rows[0]["time"] == "2026-01-01T00:00:03.000+00:00"


def test_csv_keeps_weird_names_and_values_exactly(tmp_path: Path) -> None:
    (row,) = _csv(_weird_session(tmp_path))
    assert (row["dut"], row["test"], row["name"], row["value"], row["units"]) == (WEIRD,) * 5


def test_csv_of_values_that_are_not_numbers(tmp_path: Path) -> None:
    ev = Events(tmp_path).started()
    for value in (True, 7, "nan", [1.5, "x"], {"b": 1, "a": None}, None, 10**30):
        ev.measure(value=value, low=None, high=None)
    assert [r["value"] for r in _csv(read_record(ev.ended().write()))] == [
        "true", "7", "nan", '[1.5, "x"]', '{"a": null, "b": 1}', "", str(10**30)
    ]  # fmt: skip


# --------------------------------------------------------------------------- JUnit


def test_junit_describes_final_attempts_with_suite_properties(tmp_path: Path) -> None:
    root = ET.fromstring(junit.render(_rerun_session(tmp_path)))
    (suite,) = root.findall("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"station": "cell-7", "session": "5e55-0001", "dut": "SN1", "dut_part": "PCB-7",
                     "unit_attempt": "2", "verdict": "failed"}  # fmt: skip
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "hostname")} == {
        "tests": "2", "failures": "1", "errors": "0", "skipped": "0", "hostname": "bench-1"
    }  # fmt: skip
    rail, mode = suite.findall("testcase")
    assert (rail.get("classname"), rail.get("name")) == ("tests.test_board.TestRails", "test_rail[3v3]")
    assert rail.find("failure") is None  # the failed first attempt is not counted
    rail_props = [(p.get("name"), p.get("value")) for p in rail.findall("properties/property")]
    assert rail_props == [
        ("attempts", "2"),
        ("measurement.vout", "3.3"),
        ("measurement.vout.units", "V"),
        ("measurement.vout.low", "3.2"),
        ("measurement.vout.high", "3.333"),  # not 3.3329999999999997
        ("measurement.vout.limits", "[3.2, 3.333]"),
        ("measurement.vout.outcome", "passed"),
    ]
    failure = mode.find("failure")
    assert failure is not None and failure.get("message") == "mode = 'BAD', limits == 'OK'"
    assert failure.text == "mode = 'BAD', limits == 'OK'\nmore"


def test_junit_classnames_match_pytests_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_names="""
        import pytest
        class TestA:
            @pytest.mark.parametrize("x", ["a::b", "c"])
            def test_x(self, x): pass
        def test_y(): pass
        """
    )
    pytester.runpytest("-p", "no:litmus", "--junitxml=out.xml").assert_outcomes(passed=3)
    theirs = [(c.get("classname"), c.get("name")) for c in ET.parse(pytester.path / "out.xml").iter("testcase")]
    ev = Events(pytester.path / "data").started()
    for nodeid in ("test_names.py::TestA::test_x[a::b]", "test_names.py::TestA::test_x[c]", "test_names.py::test_y"):
        ev.test(nodeid, "passed")
    ours = junit.render(read_record(ev.ended().write()))
    assert [(c.get("classname"), c.get("name")) for c in ET.fromstring(ours).iter("testcase")] == theirs


def test_junit_outcomes_and_a_test_that_never_ended(tmp_path: Path) -> None:
    ev = Events(tmp_path).started()
    for name, outcome in (("s", "skipped"), ("x", "xfailed"), ("p", "xpassed"), ("e", "error")):
        ev.test(f"t.py::{name}", outcome)
    ev.add("TestStarted", nodeid="t.py::hung", attempt=1)
    suite = ET.fromstring(junit.render(read_record(ev.write()))).find("testsuite")
    assert suite is not None
    kinds = {c.get("name"): [e.tag for e in c if e.tag != "properties"] for c in suite.iter("testcase")}
    assert kinds == {"s": ["skipped"], "x": ["skipped"], "p": [], "e": ["error"], "hung": ["error"]}
    assert (suite.get("tests"), suite.get("errors"), suite.get("skipped")) == ("5", "2", "2")


def test_junit_holds_weird_characters_as_well_formed_xml(tmp_path: Path) -> None:
    text = junit.render(_weird_session(tmp_path))
    root = ET.fromstring(text.encode("utf-8", "backslashreplace"))  # parses: nothing XML cannot hold
    shown = WEIRD.replace("\x00", "\\x00").replace("\x1b", "\\x1b").replace("\ud800", "\\xd800")
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["station"] == shown and props["dut"] == shown
    assert props[f"measurement.{shown}"] == shown
    case = next(root.iter("testcase"))
    assert case.get("name") == shown and "]]>" in text.replace("]]&gt;", "]]>")


# --------------------------------------------------------------------------- OpenHTF


def _openhtf_reference(tmp_path: Path) -> dict[str, Any]:
    """A record OpenHTF writes itself (OutputToJSON): measurements with units and validators, an attachment."""
    htf = pytest.importorskip("openhtf")
    from openhtf.output.callbacks import json_factory
    from openhtf.util import units

    @htf.measures(  # type: ignore[untyped-decorator]
        htf.Measurement("vout").in_range(3.2, 3.4).with_units(units.VOLT), htf.Measurement("mode").equals("OK")
    )
    def phase_one(test: Any) -> None:
        test.measurements.vout = 3.3
        test.measurements.mode = "BAD"
        test.attach("scope", b"abc", mimetype="text/plain")

    out = tmp_path / "openhtf.json"
    test = htf.Test(phase_one)
    test.add_output_callbacks(json_factory.OutputToJSON(str(out)))
    test.execute(test_start=lambda: "SN1")
    reference: dict[str, Any] = json.loads(out.read_text())
    return reference


def _shape(value: Any) -> Any:
    """The keys and JSON types of a record, values left out (dicts keyed by names become one entry)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def test_openhtf_json_has_the_keys_and_types_openhtf_writes(tmp_path: Path) -> None:
    reference = _openhtf_reference(tmp_path)
    ev = Events(tmp_path / "data").started("SN1")
    ev.add("TestStarted", nodeid="t.py::phase_one", dut="SN1", attempt=1)
    ev.measure(nodeid="t.py::phase_one", dut="SN1", attempt=1)
    ev.measure(name="mode", value="BAD", outcome="failed", units=None, low=None, high=None, limits={"equals": "OK"},
               nodeid="t.py::phase_one", dut="SN1", attempt=1)  # fmt: skip
    ev.add("Attachment", name="scope", path="scope.txt", mime="text/plain", nodeid="t.py::phase_one", dut="SN1",
           attempt=1)  # fmt: skip
    ev.add("TestOutcome", nodeid="t.py::phase_one", outcome="failed", dut="SN1", attempt=1, duration=0.1)
    (ev.path.parent.parent / "scope.txt").parent.mkdir(parents=True, exist_ok=True)
    path = ev.ended("failed").write()
    (path.parent / "scope.txt").write_bytes(b"abc")
    ours = json.loads(openhtf.render(read_record(path)))
    theirs_phase = reference["phases"][-1]  # after OpenHTF's own trigger phase
    our_phase = ours["phases"][0]
    assert set(ours) == set(reference)
    assert set(our_phase) == set(theirs_phase)
    for key in set(reference) - {"phases", "log_records", "metadata", "outcome_details", "marginal"}:
        assert _shape(ours[key]) == _shape(reference[key]), key
    for key in set(theirs_phase) - {"measurements", "marginal", "attachments", "descriptor_id"}:
        assert _shape(our_phase[key]) == _shape(theirs_phase[key]), key
    assert our_phase["measurements"] == theirs_phase["measurements"]  # same limits and values: the same JSON
    assert our_phase["attachments"] == theirs_phase["attachments"]
    assert (ours["outcome"], our_phase["outcome"]) == (reference["outcome"], theirs_phase["outcome"]) == ("FAIL",) * 2
    assert set(ours["metadata"]) >= set(reference["metadata"]) and ours["metadata"]["litmus"]["session"] == "5e55-0001"


def test_openhtf_json_loads_into_openhtfs_classes_and_serializes_back_the_same(tmp_path: Path) -> None:
    pytest.importorskip("openhtf")
    from openhtf.core import measurements, phase_executor, test_record
    from openhtf.core.phase_descriptor import PhaseResult
    from openhtf.output.callbacks import json_factory
    from openhtf.util import units

    class Validator:
        def __init__(self, text: str) -> None:
            self.text = text

        def __call__(self, value: Any) -> bool:
            return True

        def __str__(self) -> str:
            return self.text

    record = _rerun_session(tmp_path)
    ours = json.loads(openhtf.render(record))
    loaded = test_record.TestRecord(
        dut_id=ours["dut_id"],
        station_id=ours["station_id"],
        start_time_millis=ours["start_time_millis"],
        end_time_millis=ours["end_time_millis"],
        outcome=test_record.Outcome[ours["outcome"]],
        outcome_details=[test_record.OutcomeDetails(**d) for d in ours["outcome_details"]],
        code_info=test_record.CodeInfo(**ours["code_info"]),
        metadata=ours["metadata"],
        marginal=ours["marginal"],
        log_records=[],
    )
    for phase in ours["phases"]:
        measured = {}
        for name, found in phase["measurements"].items():
            unit = found.get("units")
            meas = measurements.Measurement(
                name,
                units=units.UnitDescriptor(**unit) if unit else None,
                validators=[Validator(v) for v in found.get("validators", [])],
                outcome=measurements.Outcome[found["outcome"]],
            )
            meas.measured_value.set(found["measured_value"])
            measured[name] = meas
        result = phase["result"]["phase_result"]
        rec = test_record.PhaseRecord(
            descriptor_id=phase["descriptor_id"],
            name=phase["name"],
            codeinfo=test_record.CodeInfo(**phase["codeinfo"]),
            measurements=measured,
            subtest_name=phase["subtest_name"],
            start_time_millis=phase["start_time_millis"],
            end_time_millis=phase["end_time_millis"],
            result=phase_executor.PhaseExecutionOutcome(PhaseResult[result] if result is not None else None),
            outcome=test_record.PhaseOutcome[phase["outcome"]],
            marginal=phase["marginal"],
        )
        loaded.add_phase_record(rec)
    back = json_factory.convert_test_record_to_json(loaded)
    for phase in back["phases"]:
        phase.pop("options")  # a PhaseRecord built by hand has none; ours names the test
    for phase in ours["phases"]:
        phase.pop("options")
    assert json.loads(json.dumps(back)) == ours
    assert [(p["name"], p["outcome"], p["result"]["phase_result"]) for p in ours["phases"]] == [
        (NODE, "SKIP", "REPEAT"),
        (NODE, "PASS", "CONTINUE"),
        ("tests/test_board.py::test_mode", "FAIL", "FAIL_AND_CONTINUE"),
    ]


def test_openhtf_units_are_openhtfs_own() -> None:
    pytest.importorskip("openhtf")
    from openhtf.util import units

    for suffix, (name, code) in openhtf.UNITS.items():
        assert units.UNITS_BY_SUFFIX[suffix] == (name, code, suffix)
    for alias, suffix in openhtf.UNIT_ALIASES.items():
        assert suffix in openhtf.UNITS and alias not in units.UNITS_BY_SUFFIX


def test_openhtf_validators_read_as_openhtfs(tmp_path: Path) -> None:
    pytest.importorskip("openhtf")
    from openhtf.util import validators

    ev = Events(tmp_path).started()
    ev.measure(name="a", low=3.2, high=3.4)
    ev.measure(name="b", low=None, high=5)
    ev.measure(name="c", low=1, high=1)
    ev.measure(name="d", value="OK", low=None, high=None, limits={"equals": "O.K"})
    ev.measure(
        name="e", low=3.2, high=3.4, limits={"low": 3.2, "high": 3.4, "marginal_low": 3.25, "marginal_high": 3.35}
    )
    (phase,) = json.loads(openhtf.render(read_record(ev.ended().write())))["phases"]
    shown = {n: x["validators"] for n, x in phase["measurements"].items()}
    assert shown == {
        "a": [str(validators.in_range(3.2, 3.4))],
        "b": [str(validators.in_range(maximum=5))],  # limits print as the terminal prints them: 5, not 5.0
        "c": [str(validators.in_range(1, 1))],
        "d": [str(validators.equals("O.K"))],
        "e": [str(validators.in_range(3.2, 3.4, marginal_minimum=3.25, marginal_maximum=3.35))],
    }


def test_openhtf_repeated_names_attachments_outside_and_missing(tmp_path: Path) -> None:
    ev = Events(tmp_path).started("SN1")
    ev.add("TestStarted", nodeid=NODE, dut="SN1", attempt=1)
    for n in range(3):
        ev.measure(value=float(n), nodeid=NODE, dut="SN1", attempt=1)
    ev.measure(name="vout_2", value=9.0, nodeid=NODE, dut="SN1", attempt=1)
    for name, rel in (
        ("ok", "att/ok.bin"),
        ("gone", "att/gone.bin"),
        ("escape", "../../secret"),
        ("abs", "/etc/hostname"),
    ):
        ev.add("Attachment", name=name, path=rel, mime=None, nodeid=NODE, dut="SN1", attempt=1)
    ev.add("TestOutcome", nodeid=NODE, outcome="passed", dut="SN1", attempt=1)
    path = ev.ended().write()
    (path.parent / "att").mkdir()
    (path.parent / "att" / "ok.bin").write_bytes(b"\x00\xff")
    (tmp_path / "secret").write_text("no")
    ours = json.loads(openhtf.render(read_record(path)))
    (phase,) = ours["phases"]
    assert {n: x["measured_value"] for n, x in phase["measurements"].items()} == {
        "vout": 0.0, "vout_2": 1.0, "vout_3": 2.0, "vout_2_2": 9.0
    }  # fmt: skip
    assert phase["attachments"] == {
        "ok": {"mimetype": "application/octet-stream", "sha1": hashlib.sha1(b"\x00\xff").hexdigest(),
               "data": base64.b64encode(b"\x00\xff").decode()}
    }  # fmt: skip
    left_out = [r["message"] for r in ours["log_records"]]
    assert len(left_out) == 3 and all("left out" in text for text in left_out)
    assert "outside the session directory" in left_out[1] and "outside the session directory" in left_out[2]


def test_openhtf_needs_one_unit(tmp_path: Path) -> None:
    ev = Events(tmp_path).started()
    ev.test("t.py::a", "passed", m(), dut="SN1").test("t.py::a", "failed", m(outcome="failed"), dut="SN2")
    record = read_record(ev.ended("failed").write())
    with pytest.raises(ValueError, match=r"2 units .*SN1, SN2.*--dut"):
        openhtf.render(record)
    assert json.loads(openhtf.render(record.for_unit("SN2")))["outcome"] == "FAIL"
    assert json.loads(openhtf.render(record.for_unit("SN1")))["outcome"] == "PASS"


def test_openhtf_of_incomplete_and_weird_sessions(tmp_path: Path) -> None:
    ev = Events(tmp_path / "a").started("SN1")
    ev.add("TestStarted", nodeid="t.py::hung", dut="SN1", attempt=1)
    ours = json.loads(openhtf.render(read_record(ev.write())))
    assert (ours["outcome"], ours["end_time_millis"], ours["outcome_details"][0]["code"]) == (
        "ERROR",
        None,
        "incomplete",
    )
    assert ours["phases"][0]["outcome"] == "ERROR" and ours["phases"][0]["result"] == {"phase_result": None}
    text = openhtf.render(_weird_session(tmp_path / "b"))
    assert text.isascii() and json.loads(text)["dut_id"] == WEIRD
