"""Reading a session's events into a record: units by DUT, tests by attempt, superseded measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recordhelpers import T0, Events, m
from serverhelpers import start_session

from pytest_litmus.events import read_session
from pytest_litmus.records import build_record, read_record
from pytest_litmus.sessionfind import sessions_of_unit

NODE = "tests/test_board.py::test_rail"


def test_a_real_session_reads_as_one_unit_without_dut(tmp_path: Path) -> None:
    station = start_session(tmp_path)
    station.test_started(NODE)
    station.measure("rail_3v3", 3.3, units="V", low=3.2, high=3.4)
    station.measure("rail_5v", 5.6, units="V", low=4.9, high=5.1)
    station.test_finished(NODE, "failed", 0.25, "rail_5v out of limits")
    station.measure("ambient", 21.5, units="degC")
    station.stop("failed")
    record = read_record(station.event_log)
    assert (record.id, record.station, record.outcome, record.dut) == (station.session_id, "cell-7", "failed", None)
    assert record.start is not None and record.end is not None and record.duration is not None
    (unit,) = record.units
    assert unit.dut is None and unit.verdict == "failed"
    (test,) = unit.tests
    assert (test.nodeid, test.outcome, test.duration, test.message, test.earlier) == (
        NODE,
        "failed",
        0.25,
        "rail_5v out of limits",
        (),
    )
    assert [(x.name, x.value, x.low, x.high, x.outcome, x.attempt, x.superseded) for x in test.measurements] == [
        ("rail_3v3", 3.3, 3.2, 3.4, "passed", 1, False),
        ("rail_5v", 5.6, 4.9, 5.1, "failed", 1, False),
    ]
    assert [x.name for x in unit.measurements] == ["ambient"]  # outside any test
    assert [x.name for x in unit.failed] == ["rail_5v"]
    assert record.measurement_count == 3


def test_a_rerun_supersedes_the_earlier_attempts_measurements(tmp_path: Path) -> None:
    ev = Events(tmp_path).started("SN1")
    ev.test(NODE, "rerun", m(value=3.6, outcome="failed"), dut="SN1", attempt=1)
    ev.test(NODE, "rerun", m(value=3.7, outcome="failed"), dut="SN1", attempt=2)
    ev.test(NODE, "passed", m(value=3.3), dut="SN1", attempt=3)
    record = read_record(ev.ended().write())
    (unit,) = record.units
    assert (unit.dut, unit.verdict, unit.failed) == ("SN1", "passed", [])
    (test,) = unit.tests
    assert test.final.attempt == 3 and [a.attempt for a in test.earlier] == [1, 2]
    assert [a.superseded for a in test.attempts] == [True, True, False]
    assert [(x.value, x.superseded) for x in unit.all_measurements()] == [(3.6, True), (3.7, True), (3.3, False)]
    assert [x.value for x in unit.all_measurements(superseded=False)] == [3.3]


def test_an_attempt_below_the_last_outcome_is_superseded_whatever_its_outcome(tmp_path: Path) -> None:
    ev = Events(tmp_path).started("SN1")
    ev.test(NODE, "failed", m(value=3.6, outcome="failed"), dut="SN1", attempt=1)  # no "rerun" written
    ev.test(NODE, "passed", m(value=3.3), dut="SN1", attempt=2)
    (unit,) = read_record(ev.ended().write()).units
    assert unit.verdict == "passed"
    assert [x.superseded for x in unit.all_measurements()] == [True, False]


def test_the_final_attempt_failing_fails_the_unit(tmp_path: Path) -> None:
    ev = Events(tmp_path).started("SN1")
    ev.test(NODE, "rerun", m(value=3.3), dut="SN1", attempt=1)
    ev.test(NODE, "failed", m(value=3.6, outcome="failed"), dut="SN1", attempt=2)
    (unit,) = read_record(ev.ended("failed").write()).units
    assert unit.verdict == "failed" and [x.value for x in unit.failed] == [3.6]


def test_an_old_file_without_attempts_counts_them_from_test_started(tmp_path: Path) -> None:
    ev = Events(tmp_path).add("SessionStarted", station="cell-7")
    for value, outcome in ((3.6, "failed"), (3.3, "passed")):
        ev.add("TestStarted", nodeid=NODE)
        ev.add("Measurement", name="vout", value=value, low=3.2, high=3.4, outcome=outcome, nodeid=NODE)
        ev.add("TestOutcome", nodeid=NODE, outcome=outcome, duration=0.1, message=None)
    (unit,) = read_record(ev.ended().write()).units
    (test,) = unit.tests
    assert (unit.dut, test.final.attempt, test.outcome, unit.verdict) == (None, 2, "passed", "passed")
    assert [(x.attempt, x.superseded) for x in unit.all_measurements()] == [(1, True), (2, False)]


def test_each_dut_of_a_session_is_a_unit_with_its_own_verdict(tmp_path: Path) -> None:
    ev = Events(tmp_path).started(None)
    ev.add("UnitStarted", dut="SN1", dut_part="PCB-7", unit_attempt=1, slot="gw0")
    ev.add("UnitStarted", dut="SN2", dut_part="PCB-7", unit_attempt=3, slot="gw1")
    ev.test("t.py::a", "passed", m(), dut="SN1")
    ev.test("t.py::a", "failed", m(value=9.0, outcome="failed"), dut="SN2")
    record = read_record(ev.ended("failed").write())
    assert [(u.dut, u.part, u.unit_attempt, u.slot, u.verdict) for u in record.units] == [
        ("SN1", "PCB-7", 1, "gw0", "passed"),
        ("SN2", "PCB-7", 3, "gw1", "failed"),
    ]
    assert record.unit("SN2").tests[0].outcome == "failed"
    with pytest.raises(LookupError, match=r"'SN9'.*'SN1', 'SN2'"):
        record.unit("SN9")


def test_events_without_dut_belong_to_the_sessions_dut(tmp_path: Path) -> None:
    ev = Events(tmp_path).started(
        "SN1", dut_part="PCB-7", unit_attempt=2, limits_file="limits.yaml", limits_sha256="ab" * 32
    )
    ev.add("TestStarted", nodeid=NODE)
    ev.add("Measurement", name="vout", value=3.3, outcome="passed", nodeid=NODE)
    ev.add("TestOutcome", nodeid=NODE, outcome="passed", duration=0.1)
    record = read_record(ev.ended().write())
    (unit,) = record.units
    assert (unit.dut, unit.part, unit.unit_attempt, unit.slot) == ("SN1", "PCB-7", 2, "main")
    assert (record.limits_file, record.limits_sha256) == ("limits.yaml", "ab" * 32)
    assert unit.tests[0].measurements[0].dut == "SN1"


def test_every_measurement_field_of_the_schema_is_read(tmp_path: Path) -> None:
    limits = {"low": 3.2, "high": 3.4, "low_inclusive": True, "high_inclusive": False, "nominal": 3.3,
              "marginal_low": 3.22, "units": "V", "source": "file"}  # fmt: skip
    ev = Events(tmp_path).started("SN1")
    ev.test(NODE, "passed", m(limits=limits, marginal=True, where="tests/test_board.py:42", units="V"), dut="SN1")
    (x,) = read_record(ev.ended().write()).units[0].tests[0].measurements
    assert (x.limits, x.marginal, x.where, x.units, x.dut, x.attempt, x.nodeid) == (
        limits,
        True,
        "tests/test_board.py:42",
        "V",
        "SN1",
        1,
        NODE,
    )
    assert x.ts is not None and x.seq == 3


def test_attachments_follow_their_attempt(tmp_path: Path) -> None:
    ev = Events(tmp_path).started("SN1")
    for attempt, outcome in ((1, "rerun"), (2, "passed")):
        ev.add("TestStarted", nodeid=NODE, dut="SN1", attempt=attempt)
        ev.add("Attachment", name="scope", path=f"attachments/scope-{attempt}.json", mime="application/json",
               size=120, sha256="0" * 64, nodeid=NODE, dut="SN1", attempt=attempt, series=True)  # fmt: skip
        ev.add("TestOutcome", nodeid=NODE, outcome=outcome, dut="SN1", attempt=attempt)
    ev.add("Attachment", name="log", path="attachments/log.txt", mime="text/plain", size=5, nodeid=None, dut="SN1")
    (unit,) = read_record(ev.ended().write()).units
    (test,) = unit.tests
    assert [(a.path, a.superseded, a.series) for t in test.attempts for a in t.attachments] == [
        ("attachments/scope-1.json", True, True),
        ("attachments/scope-2.json", False, True),
    ]
    assert [(a.name, a.mime, a.size, a.sha256) for a in unit.attachments] == [("log", "text/plain", 5, None)]


def test_verdicts_of_incomplete_skipped_and_errored_sessions(tmp_path: Path) -> None:
    running = Events(tmp_path, "a").started("SN1").test(NODE, "passed", m(), dut="SN1")
    running.add("TestStarted", nodeid="t.py::b", dut="SN1", attempt=1)
    assert read_record(running.write()).units[0].verdict == "incomplete"
    skipped = Events(tmp_path, "b").started("SN1").test(NODE, "skipped", dut="SN1").ended()
    assert read_record(skipped.write()).units[0].verdict == "skipped"
    errored = Events(tmp_path, "c").started("SN1").test(NODE, "passed", m(), dut="SN1").ended("errored")
    assert read_record(errored.write()).units[0].verdict == "errored"
    empty = Events(tmp_path, "d").started().ended()
    assert [(u.dut, u.verdict, u.tests) for u in read_record(empty.write()).units] == [(None, "skipped", ())]


def test_damaged_lines_and_wrong_types_are_skipped_or_read_as_missing(tmp_path: Path) -> None:
    ev = Events(tmp_path).started(["not", "a", "serial"])  # type: ignore[arg-type]
    ev.raw('{"seq": 2, "type": "Measurem').raw("\x00\xff garbage").raw("[1, 2]")
    ev.add("TestStarted", nodeid=NODE, attempt="x", dut=None)
    ev.add("Measurement", name=7, value={"a": [1]}, low="low", high=None, outcome=None,
           nodeid=NODE, attempt=0, limits=["no"], marginal="yes", where=5)  # fmt: skip
    ev.add("TestOutcome", nodeid=None, outcome="passed")  # no nodeid: not a test
    ev.add("TestOutcome", nodeid=NODE, outcome=3, duration="long")
    ev.raw('{"seq": 99, "ts": 1, "type": "TestOutc')  # torn last line (no newline below)
    path = ev.write()
    path.write_bytes(path.read_bytes()[:-1])
    record = read_record(path)
    assert (record.bad_lines, record.torn, record.dut) == (3, True, "['not', 'a', 'serial']")
    (unit,) = record.units
    (test,) = unit.tests
    (x,) = test.measurements
    assert (x.name, x.value, x.low, x.outcome, x.attempt, x.limits, x.marginal, x.where) == (
        "7",
        {"a": [1]},
        None,
        "passed",
        1,
        None,
        False,
        "5",
    )
    assert (test.outcome, test.duration) == ("3", None)


def test_build_record_takes_events_already_read(tmp_path: Path) -> None:
    path = Events(tmp_path).started("SN1").test(NODE, "passed", m(), dut="SN1").ended().write()
    assert build_record(read_session(path)) == read_record(path)


# --------------------------------------------------------------------------- sessions_of_unit


def test_sessions_of_unit_finds_sessions_by_session_or_unit_dut_oldest_first(tmp_path: Path) -> None:
    Events(tmp_path, "newer", t0=2000).started("SN1").ended().write()
    Events(tmp_path, "older", t0=1000).started(None).add("UnitStarted", dut="SN1", slot="gw0").ended().write()
    other = Events(tmp_path, "other", t0=1500).started("SN2")
    other.add("Measurement", name="SN1", value="SN1", outcome="passed", dut="SN2")  # the serial as text only
    other.ended().write()
    Events(tmp_path, "old-format", t0=1200).add("SessionStarted", station="cell-7").ended().write()
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SN1")] == ["older", "newer"]
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SN2")] == ["other"]
    assert sessions_of_unit(tmp_path, "SN") == []  # a prefix is not the serial


def test_sessions_of_unit_with_odd_serials_and_data_dirs(tmp_path: Path) -> None:
    odd = 'SN"1\\ü𝄞\n'
    Events(tmp_path, "odd").started(odd).ended().write()
    raw = Events(tmp_path, "raw", t0=T0 + 100)  # the writer keeps non-ASCII as it is; a JSON escape reads the same
    raw.raw(
        json.dumps(
            {"seq": 1, "ts": T0 + 100, "session": "raw", "type": "SessionStarted", "dut": "SNü𝄞"}, ensure_ascii=False
        )
    )
    raw.ended().write()
    assert [p.parent.name for p in sessions_of_unit(tmp_path, odd)] == ["odd"]
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SNü𝄞")] == ["raw"]
    assert sessions_of_unit(tmp_path / "nowhere", "SN1") == []
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "sessions").write_text("")
    with pytest.raises(NotADirectoryError):
        sessions_of_unit(tmp_path / "plain", "SN1")
    (tmp_path / "sessions" / "dir-as-file" / "events.jsonl").mkdir(parents=True)  # unreadable: skipped
    (tmp_path / "sessions" / "garbage").mkdir()
    (tmp_path / "sessions" / "garbage" / "events.jsonl").write_bytes(b'\xff{"dut": "SN1"\n' + json.dumps(odd).encode())
    assert [p.parent.name for p in sessions_of_unit(tmp_path, odd)] == ["odd"]


def test_sessions_of_unit_takes_the_index_and_scans_only_sessions_no_index_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_litmus import sessionfind as records
    from pytest_litmus.units import next_attempt

    Events(tmp_path, "old", t0=1000).started("SN1").ended().write()  # before the index: found by scanning
    Events(tmp_path, "copied", t0=1100).started(None).add("UnitStarted", dut="SN1", slot="gw0").ended().write()
    for session, serial in (("indexed", "SN1"), ("other", "SN2"), ("gone", "SN1")):
        next_attempt(tmp_path, serial, session, station="cell-7", slot="main")
    Events(tmp_path, "indexed", t0=900).started("SN1").ended().write()
    # listed for SN2 only: not read, though it names SN1 (the holder numbers a unit before any event names it)
    Events(tmp_path, "other", t0=1200).started("SN2").add("UnitStarted", dut="SN1", slot="gw1").ended().write()
    (tmp_path / "sessions" / "gone").mkdir()  # listed, but its event file is not there
    scanned: list[str] = []
    scan = records._names_unit
    monkeypatch.setattr(
        records, "_names_unit", lambda path, serial: scanned.append(path.parent.name) or scan(path, serial)
    )
    # oldest first: the index's time for an indexed session, SessionStarted's for a scanned one
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SN1")] == ["old", "copied", "indexed"]
    assert sorted(scanned) == ["copied", "old"]
    scanned.clear()
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SN2")] == ["other"]
    assert sorted(scanned) == ["copied", "old"]
    (tmp_path / "units" / "sn-SN1.jsonl").write_bytes(b'{"serial": "SN1", "attempt": 1, "sess')  # damaged: scanned
    scanned.clear()
    assert [p.parent.name for p in sessions_of_unit(tmp_path, "SN1")] == ["indexed", "old", "copied"]
    assert sorted(scanned) == ["copied", "indexed", "old"]
