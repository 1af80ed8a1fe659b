"""``litmus sessions``, ``litmus show`` and ``litmus tail`` on real event files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import start_session

from pytest_litmus.cli import main

NODE = "tests/test_board.py::test_rail"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _finished_session(data_dir: Path) -> Any:
    station = start_session(data_dir)
    dmm = station.instrument("dmm")
    station.test_started(NODE)
    station.measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
    station.measure("rail_5v", 5.6, units="V", low=4.9, high=5.1)
    station.test_finished(NODE, "failed", 0.25, "rail_5v = 5.6 V, limits [4.9, 5.1]: failed")
    station.stop("failed")
    return station


def _running_session(data_dir: Path, session: str = "ffff0000-running") -> Path:
    path = data_dir / "sessions" / session / "events.jsonl"
    path.parent.mkdir(parents=True)
    started = {"seq": 1, "ts": time.time() + 10, "session": session, "type": "SessionStarted", "station": "cell-7"}
    started |= {"mock": True, "pid": os.getpid(), "host": os.uname().nodename}
    test = {
        "seq": 2,
        "ts": time.time() + 10,
        "session": session,
        "type": "TestOutcome",
        "nodeid": NODE,
        "outcome": "passed",
    }
    path.write_text(json.dumps(started) + "\n" + json.dumps(test) + "\n")
    return path


def test_sessions_lists_newest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = _finished_session(tmp_path)
    _running_session(tmp_path)
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "sessions")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["SESSION", "STATION", "STARTED", "DURATION", "OUTCOME"]
    assert lines[1].startswith("ffff0000") and "running" in lines[1] and "1 passed" in lines[1]
    assert lines[2].startswith(done.session_id[:8]) and "failed" in lines[2] and "mock" in lines[2]
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "sessions", "--json", "--limit", "1")
    rows = json.loads(out)
    assert [(r["id"], r["outcome"], r["running"], r["counts"]) for r in rows] == [
        ("ffff0000-running", "incomplete", True, {"passed": 1})
    ]
    rows = json.loads(_run(capsys, "--data-dir", str(tmp_path), "sessions", "--json")[1])
    assert rows[1]["counts"] == {"measurements_passed": 1, "measurements_failed": 1, "failed": 1}
    assert rows[1]["duration"] > 0 and rows[1]["mock"] is True and rows[1]["station"] == "cell-7"


def test_show_a_session_by_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = _finished_session(tmp_path)
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "show", done.session_id[:6])
    assert code == 0
    assert f"Session {done.session_id}" in out
    assert "ended     failed after" in out
    assert f"FAILED     {NODE}" in out
    assert "rail_3v3 = 3.3012 V  [3.2, 3.4]  passed" in out
    assert "rail_5v = 5.6 V  [4.9, 5.1]  failed" in out
    assert "dmm      TCPIP0::192.168.1.50::inst0::INSTR  Keysight" in out
    summary = json.loads(_run(capsys, "--data-dir", str(tmp_path), "show", done.session_id, "--json")[1])
    assert summary["tests"][0]["outcome"] == "failed"
    assert [m["outcome"] for m in summary["tests"][0]["measurements"]] == ["passed", "failed"]
    assert summary["instruments"][0]["calls"] == 1


def test_show_unknown_or_ambiguous(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _running_session(tmp_path, "abc-1")
    _running_session(tmp_path, "abc-2")
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "show", "abc")
    assert code == 1 and "ambiguous" in err and "abc-1, abc-2" in err
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "show", "zzz")
    assert code == 1 and "no session 'zzz'" in err
    code, _, err = _run(capsys, "--data-dir", str(tmp_path / "empty"), "tail")
    assert code == 1 and "no sessions" in err


def _tail(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pytest_litmus.cli", "--data-dir", str(data_dir), "tail", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_tail_follows_a_running_session_until_it_ends(tmp_path: Path) -> None:
    station = start_session(tmp_path)
    station.test_started(NODE)
    tail = _tail(tmp_path, station.session_id[:8], "--calls")
    assert tail.stdout is not None
    lines = [tail.stdout.readline()]
    while "START" not in lines[-1]:  # the replay reached the test: now write live
        assert lines[-1], "litmus tail ended early"
        lines.append(tail.stdout.readline())
    station.instrument("dmm").query("*IDN?")
    station.measure("rail_3v3", 3.3, units="V", low=3.2, high=3.4)
    station.test_finished(NODE, "passed", 0.1)
    station.stop()
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    text = "".join(lines) + out
    assert f"session {station.session_id} started: station cell-7 (mock)" in text
    assert "dmm.query('*IDN?') -> 'Keysight" in text
    assert "measure  rail_3v3 = 3.3 V  [3.2, 3.4]  passed" in text
    assert f"PASSED   {NODE} (100ms)" in text
    assert text.rstrip().splitlines()[-1].endswith("session ended: passed (1 passed; measurements 1 passed)")


def test_tail_json_and_unfinished_sessions(tmp_path: Path) -> None:
    done = _finished_session(tmp_path)
    out, _ = _tail(tmp_path, done.session_id, "--json").communicate(timeout=30)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [e["seq"] for e in done.events()]
    out, _ = _tail(tmp_path, done.session_id).communicate(timeout=30)
    assert "InstrumentCall" not in out and "measure_voltage" not in out  # calls only with --calls
    _running_session(tmp_path)
    follow = _tail(tmp_path, "--no-follow")  # the newest: the running one
    assert follow.communicate(timeout=30)[0].count("\n") == 2 and follow.returncode == 0
    timed = _tail(tmp_path, "ffff", "--timeout", "0")
    _, err = timed.communicate(timeout=30)
    assert timed.returncode == 3 and "has not ended (the timeout passed)" in err


def test_tail_tags_what_an_xdist_worker_did() -> None:
    from pytest_litmus.cli.tail import describe

    caller = {"pid": 7, "host": "bench", "user": "t", "worker": "gw1"}
    outcome = {
        "seq": 9,
        "ts": 0.0,
        "type": "TestOutcome",
        "nodeid": "t.py::a",
        "outcome": "passed",
        "duration": 0.5,
        "caller": caller,
    }
    line = describe(outcome)
    assert line is not None and line.split(" ", 1)[1] == "[gw1] PASSED   t.py::a (500ms)"
    joined = describe({"type": "InstrumentClientConnected", "server": "127.0.0.1:1", "caller": caller})
    assert joined is not None and joined.endswith("client pid 7 t@bench (xdist gw1) connected")
    assert "[" not in (describe({"type": "TestStarted", "nodeid": "x"}) or "[")


@pytest.mark.parametrize("bad", ["../x", "/etc", "a/b", "a\x00b", "x" * 300, "..", "", "a\\b"])
def test_show_refuses_a_bad_session_id(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    _finished_session(tmp_path)
    code, out, err = _run(capsys, "--data-dir", str(tmp_path), "show", bad)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "SESSION" in err


def test_find_session_never_leaves_the_sessions_dir(tmp_path: Path) -> None:
    from pytest_litmus.cli.sessions import find_session
    from pytest_litmus.errors import InvalidName

    outside = tmp_path / "elsewhere"
    (outside / "sessions").mkdir(parents=True)
    (outside / "events.jsonl").write_text("")
    (tmp_path / "data" / "sessions").mkdir(parents=True)
    for bad in ("../../elsewhere", "../", str(outside)):
        with pytest.raises(InvalidName):
            find_session(tmp_path / "data", bad)
