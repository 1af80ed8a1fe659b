"""``litmus export``, ``litmus unit SERIAL`` and ``litmus sessions --dut`` on event files."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import pytest
from recordhelpers import T0, Events, m

from pytest_litmus.cli import main

NODE = "tests/test_board.py::test_rail"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _unit_history(data_dir: Path) -> None:
    """SN1 failed (vout 3.6 V) at cell-7, then passed at cell-9; SN2 was tested beside SN1 in the first session."""
    first = Events(data_dir, "aaaa1111", t0=T0).started(None, station="cell-7", host="bench-1")
    first.add("UnitStarted", dut="SN1", unit_attempt=1, slot="gw0").add(
        "UnitStarted", dut="SN2", unit_attempt=1, slot="gw1"
    )
    first.test(NODE, "failed", m(value=3.6, outcome="failed", units="V"), dut="SN1")
    first.test(NODE, "passed", m(), dut="SN2")
    first.ended("failed").write()
    second = Events(data_dir, "bbbb2222", t0=T0 + 3600).started("SN1", station="cell-9", host="bench-2", unit_attempt=2)
    second.test(NODE, "rerun", m(value=3.7, outcome="failed"), dut="SN1", attempt=1)
    second.test(NODE, "passed", m(), dut="SN1", attempt=2)
    second.ended().write()


# --------------------------------------------------------------------------- litmus unit


def test_unit_lists_every_attempt_oldest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "unit", "SN1")
    assert (code, err) == (0, "")
    header, first, second = out.splitlines()
    assert header.split() == ["WHEN", "STATION", "HOST", "SESSION", "ATTEMPT", "VERDICT", "FAILED"]
    assert first.split()[2:] == ["cell-7", "bench-1", "aaaa1111", "1", "failed", "vout=3.6", "V", "[3.2,", "3.4]"]
    assert second.split()[2:] == ["cell-9", "bench-2", "bbbb2222", "2", "passed"]  # the rerun's failure is superseded


def test_unit_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "unit", "SN2", "--json")
    (row,) = json.loads(out)
    assert code == 0
    assert {k: row[k] for k in ("session", "station", "unit_attempt", "slot", "verdict", "failed")} == {
        "session": "aaaa1111", "station": "cell-7", "unit_attempt": 1, "slot": "gw1", "verdict": "passed", "failed": []
    }  # fmt: skip


def test_unit_attempt_counted_when_the_files_do_not_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n, verdict in enumerate(("failed", "errored", "passed")):
        ev = Events(tmp_path, f"s{n}", t0=T0 + n).started("SN1")
        ev.test(NODE, "error" if verdict == "failed" else "passed", dut="SN1").ended(verdict).write()
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "unit", "SN1", "--json")
    assert code == 0
    assert [(r["unit_attempt"], r["verdict"], r["failed"]) for r in json.loads(out)] == [
        (1, "failed", [NODE]), (2, "errored", []), (3, "passed", [])
    ]  # fmt: skip


def test_unit_not_found_empty_serial_and_damaged_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "unit", "SN9")
    assert (code, out) == (1, "") and err == f"litmus: error: no session tested unit 'SN9' in {tmp_path / 'sessions'}\n"
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "unit", "")
    assert code == 2 and err == "litmus unit: error: argument SERIAL: empty\n"
    path = tmp_path / "sessions" / "bbbb2222" / "events.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"TestStarted"', b'"TestStarted", "ts": "x"', 1))
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "unit", "SN1")
    assert code == 2 and len(out.splitlines()) == 3  # both sessions listed, then the damage named
    assert err.startswith(f"litmus: error: {path}: line 2: 'ts' must be a Unix time") and err.count("\n") == 1


# --------------------------------------------------------------------------- litmus sessions --dut


def test_sessions_dut_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    Events(tmp_path, "cccc3333").started("SN3").ended().write()
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "sessions", "--dut", "SN1", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == ["bbbb2222", "aaaa1111"]  # newest first
    assert [r["dut"] for r in json.loads(out)] == ["SN1", None]
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "sessions", "--dut", "SN2")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["aaaa1111"]
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "sessions", "--dut", "SN9")
    assert (code, out) == (0, f"no sessions that tested unit 'SN9' in {tmp_path / 'sessions'}\n")


# --------------------------------------------------------------------------- litmus export


def test_export_to_stdout_and_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "export", "bbbb", "--format", "csv")
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [(r["attempt"], r["superseded"], r["value"]) for r in rows] == [("1", "true", "3.7"), ("2", "false", "3.3")]
    target = tmp_path / "out" / "sn1.json"
    target.parent.mkdir()
    code, out, err = _run(
        capsys, "--data-dir", str(tmp_path), "export", "aaaa", "-f", "openhtf", "--dut", "SN1", "-o", str(target)
    )
    assert (code, out, err) == (0, "", "")
    assert json.loads(target.read_text())["dut_id"] == "SN1" and os.listdir(target.parent) == ["sn1.json"]
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "export", "aaaa", "-f", "junit", "--dut", "SN2")
    assert code == 0 and 'name="dut" value="SN2"' in out and "SN1" not in out


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    base = ("--data-dir", str(tmp_path), "export")
    cases = [
        ((*base, "nope", "-f", "csv"), 1, f"litmus: error: no session 'nope' in {tmp_path / 'sessions'}"),
        ((*base, "../x", "-f", "csv"), 2, "litmus export: error: argument SESSION: bad session id '../x'"),
        ((*base, "aaaa", "-f", "csv", "--dut", "SN9"), 1, "litmus: error: session aaaa1111 has no unit 'SN9'"),
        ((*base, "aaaa", "-f", "openhtf"), 2, "litmus: error: session aaaa1111 has 2 units (SN1, SN2)"),
        ((*base, "aaaa", "-f", "csv", "-o", str(tmp_path / "no" / "dir" / "x.csv")), 2,
         f"litmus: error: {tmp_path / 'no' / 'dir' / 'x.csv'}: No such file or directory"),
        ((*base, "aaaa", "-f", "csv", "-o", str(tmp_path)), 2, f"litmus: error: {tmp_path}: is a directory"),
    ]  # fmt: skip
    for args, want_code, want in cases:
        code, out, err = _run(capsys, *args)
        assert (code, out, err.count("\n")) == (want_code, "", 1), args
        assert err.startswith(want), (args, err)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_export_to_a_read_only_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _unit_history(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "export", "aaaa", "-f", "csv", "-o", str(locked / "x.csv"))
    assert code == 2 and err == f"litmus: error: {locked / 'x.csv'}: Permission denied\n"


def test_export_html_without_the_report_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _unit_history(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the report extra were not installed
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "export", "aaaa", "-f", "html")
    assert (code, out) == (2, "")
    assert (
        err == "litmus export: error: --format html needs pytest-litmus[report]: pip install 'pytest-litmus[report]'\n"
    )


def test_export_of_a_damaged_file_writes_what_it_read_then_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ev = Events(tmp_path, "dddd4444").started("SN1").raw("not json").test(NODE, "passed", m(), dut="SN1")
    ev.raw('{"seq": 99, "ts": null, "session": "dddd4444", "type": "Measurement"}').ended()
    path = ev.write()
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "export", "dddd", "-f", "csv")
    assert code == 2 and len(out.splitlines()) == 2  # the header and the one good measurement
    assert err == f"litmus: error: {path}: line 2: not JSON (Expecting value) (2 bad lines skipped)\n"


def test_export_writes_a_lone_surrogate_as_its_escape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Events(tmp_path, "eeee5555").started("SN\ud800").test(
        NODE, "passed", m(name="v\ud800"), dut="SN\ud800"
    ).ended().write()
    target = tmp_path / "x.csv"
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "export", "eeee", "-f", "csv", "-o", str(target))
    assert (code, err) == (0, "")
    assert "SN\\ud800" in target.read_text(encoding="utf-8")
