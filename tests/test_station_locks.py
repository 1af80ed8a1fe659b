"""Locks as StationConnection takes them: per resource, events, timeouts, forced release, mock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from children import end

from pytest_litmus import LockLost, ResourceInUse, StationConnection, connect
from pytest_litmus.locks import list_locks, release_lock


def test_second_session_gets_resource_in_use_naming_the_holder(sim_station: str) -> None:
    with connect(sim_station) as a, connect(sim_station) as b:
        a.nodeid = "tests/test_a.py::test_holder"
        a.instrument("dmm")
        b.instrument("psu")  # another resource of the same station: independent
        with pytest.raises(ResourceInUse) as info:
            b.instrument("dmm")
        holder = info.value.holder
        assert holder["pid"] == os.getpid() and holder["session"] == a.session_id
        assert (holder["station"], holder["role"], holder["nodeid"]) == ("bench", "dmm", "tests/test_a.py::test_holder")
        a.release("dmm")
        assert b.instrument("dmm").measure_voltage() > 3
    acquired = a.events("LockAcquired")
    # the simulator implements VISA locks, so the instrument-side lock is taken as well
    assert [(e["role"], e["mode"], e["kind"]) for e in acquired] == [("dmm", "exclusive", "visa")]
    assert 0 <= acquired[0]["waited"] < 1
    assert [e["role"] for e in a.events("LockReleased")] == ["dmm"]
    assert [e["role"] for e in b.events("LockReleased")] == ["dmm", "psu"]  # reverse order on stop


def test_holder_in_another_process(sim_station: str, project: Path) -> None:
    code = (
        "import sys; from pytest_litmus import connect\n"
        f"s = connect({sim_station!r}).start(); s.instrument('psu'); print('held', flush=True); sys.stdin.readline()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=project, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with connect(sim_station) as station:
            with pytest.raises(ResourceInUse) as info:
                station.instrument("psu", timeout=0)
            assert info.value.holder["pid"] == proc.pid
        end(proc)
        with connect(sim_station) as station:
            station.instrument("psu", timeout=5)  # the kernel freed it when the holder died
    finally:
        end(proc)


def test_forced_release_is_noticed_on_the_next_call(sim_station: str) -> None:
    with connect(sim_station) as station:
        psu = station.instrument("psu")
        psu.set_voltage(1.0)
        states = list_locks(station.data_dir)
        assert [(s.resource, s.state) for s in states] == [("GPIB0::17::INSTR", "held")]
        result = release_lock(station.data_dir, "GPIB0::17::INSTR", force=True)
        assert result.action == "broken"
        with pytest.raises(LockLost, match=r"lock on psu \(GPIB0::17::INSTR\) was released from under this session"):
            psu.set_voltage(2.0)


def test_mock_sessions_take_no_locks(project: Path) -> None:
    with connect("cell-7", mock=True) as a, connect("cell-7", mock=True) as b:
        a.instrument("dmm")
        b.instrument("dmm")
        assert a.events("LockAcquired") == [] and list_locks(a.data_dir) == []


def test_lock_timeout_from_the_plugin(station_project: pytest.Pytester) -> None:
    text = (station_project.path / "stations" / "cell-7.yaml").read_text()
    (station_project.path / "stations" / "cell-7.yaml").write_text(
        text.replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim")
    )
    station_project.makepyfile(
        """
        from pytest_litmus import connect, ResourceInUse
        import pytest

        def test_locked_for_the_session(dmm, station):
            other = connect("cell-7").start()
            try:
                with pytest.raises(ResourceInUse) as info:
                    other.instrument("dmm")
                assert info.value.holder["session"] == station.session_id
                assert info.value.holder["nodeid"].endswith("::test_locked_for_the_session")
            finally:
                other.stop()
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--litmus-lock-timeout", "0")
    result.assert_outcomes(passed=1)


def test_timeout_argument_overrides_the_session_default(sim_station: str, project: Path) -> None:
    with connect(sim_station) as a:
        a.instrument("dmm")
        b = StationConnection(a.config, data_dir=a.data_dir, lock_timeout=None)
        with b:
            with pytest.raises(ResourceInUse) as info:
                b.instrument("dmm", timeout=0.05)
            assert info.value.waited >= 0.05
            assert [e["holder"]["session"] for e in b.events("LockContended")] == [a.session_id]


def test_a_held_role_fails_its_tests_with_one_line_and_a_wait_is_announced(station_project: pytest.Pytester) -> None:
    text = (station_project.path / "stations" / "cell-7.yaml").read_text()
    (station_project.path / "stations" / "cell-7.yaml").write_text(
        text.replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim")
    )
    station_project.makepyfile("def test_one(dmm):\n    pass\n\ndef test_two(dmm):\n    pass\n")
    code = (
        "import sys; from pytest_litmus import connect\n"
        "s = connect('cell-7').start(); s.instrument('dmm'); print('held', flush=True); sys.stdin.readline()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=station_project.path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        at_once = station_project.runpytest("--station", "cell-7")
        at_once.assert_outcomes(errors=2)
        line = (
            "litmus: role 'dmm': ResourceInUse: TCPIP0::192.168.1.50::inst0::INSTR is in use by pid *"
            "(the run does not wait for a held instrument: pass --litmus-lock-timeout SECONDS to wait)"
        )
        at_once.stdout.fnmatch_lines(["*ERROR at setup of test_one*", line, "*ERROR at setup of test_two*", line])
        assert "During handling" not in at_once.stdout.str() and "holder.py" not in at_once.stdout.str()
        waiting = station_project.runpytest("--station", "cell-7", "--litmus-lock-timeout", "0.1")
        waiting.assert_outcomes(errors=2)
        waiting.stdout.fnmatch_lines(
            [
                "litmus: waiting for dmm (TCPIP0::192.168.1.50::inst0::INSTR), held by pid *; up to 0.1 s (--litmus-lock-timeout)"
            ]
        )
        assert "pass --litmus-lock-timeout" not in waiting.stdout.str()
    finally:
        end(holder)
