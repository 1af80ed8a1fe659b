"""pytest-xdist: one run is one session; the controller holds the station, workers join it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from plugincases import OUTCOMES, session_events

pytest.importorskip("xdist")

REPO = Path(__file__).resolve().parent.parent

#: Tests that all use both instruments: two workers locking them on their own would collide.
SHARED_INSTRUMENTS = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_rails(dmm, psu, measure, n):
    psu.set_voltage(3.3)
    measure("rail", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
"""


def real_station(pytester: pytest.Pytester) -> None:
    """Make cell-7 a non-mock station on the simulator backend, so locks are taken."""
    path = pytester.path / "stations" / "cell-7.yaml"
    path.write_text(path.read_text().replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim"))


def by_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


def test_mock_run_on_two_workers_is_one_session_with_every_outcome(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(test_outcomes=OUTCOMES)
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "2")
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1, xfailed=1, xpassed=1)
    assert len(list((station_project.path / "home" / "sessions").iterdir())) == 1
    events = session_events(station_project)  # one file, complete, every line valid JSON
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # one writer numbers them all
    assert events[0]["type"] == "SessionStarted" and events[-1]["type"] == "SessionEnded"
    assert len({e["session"] for e in events}) == 1
    outcomes = {e["nodeid"].split("::")[1]: e for e in by_type(events, "TestOutcome")}
    assert {k: v["outcome"] for k, v in outcomes.items()} == {
        "test_pass": "passed",
        "test_fail": "failed",
        "test_skip": "skipped",
        "test_error": "error",
        "test_xfail": "xfailed",
        "test_xpass": "xpassed",
    }
    assert {e["caller"]["worker"] for e in outcomes.values()} <= {"gw0", "gw1"}
    calls = by_type(events, "InstrumentCall")
    assert calls and all(c["caller"]["worker"] in ("gw0", "gw1") and c["nodeid"] for c in calls)
    ended = events[-1]
    assert ended["outcome"] == "failed"
    assert ended["counts"] == {
        "passed": 1,
        "failed": 1,
        "skipped": 1,
        "error": 1,
        "xfailed": 1,
        "xpassed": 1,
        "measurements_failed": 1,
    }
    clients = by_type(events, "InstrumentClientConnected")
    assert sorted(c["caller"]["worker"] for c in clients) == ["gw0", "gw1"]


def test_real_station_on_two_workers_takes_each_lock_once(station_project: pytest.Pytester) -> None:
    real_station(station_project)
    station_project.makepyfile(test_rails=SHARED_INSTRUMENTS)
    result = station_project.runpytest("--station", "cell-7", "-n", "2")
    result.assert_outcomes(passed=6)  # no ResourceInUse: the workers do not fight over the locks
    result.stdout.re_match_lines(
        [r"litmus: this process holds the instruments; xdist workers reach them at 127\.0\.0\.1:\d+"]
    )
    events = session_events(station_project)
    acquired = by_type(events, "LockAcquired")
    assert sorted(e["role"] for e in acquired) == ["dmm", "psu"]
    assert sorted(e["role"] for e in by_type(events, "LockReleased")) == ["dmm", "psu"]
    workers = {e["caller"]["worker"] for e in by_type(events, "Measurement")}
    assert workers == {"gw0", "gw1"}  # both workers measured through the one holder
    assert events[-1]["counts"] == {"passed": 6, "measurements_passed": 6}
    assert not list((station_project.path / "home" / "locks").glob("*.json"))  # holder records gone with the run


def test_sync_meets_every_worker(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
        def test_meet(station):
            result = station.sync("power-up", timeout=60)
            assert result.parties == 2
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=2)
    events = session_events(station_project)
    arrived = by_type(events, "SyncArrived")
    assert sorted(e["caller"]["worker"] for e in arrived) == ["gw0", "gw1"]
    assert len(by_type(events, "SyncReleased")) == 2


def test_a_worker_that_dies_in_a_test_still_gets_its_outcome_recorded(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_fine(dmm, n):
            dmm.measure_voltage()

        def test_dies(dmm):
            dmm.measure_voltage()
            os._exit(3)
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "2")
    result.assert_outcomes(passed=3, failed=1)
    events = session_events(station_project)
    outcomes = {e["nodeid"].split("::")[1]: e for e in by_type(events, "TestOutcome")}
    assert len(outcomes) == 4
    died = outcomes["test_dies"]
    assert died["outcome"] == "failed" and "crashed" in died["message"] and died["caller"]["worker"]
    assert events[-1]["outcome"] == "failed" and events[-1]["counts"] == {"passed": 3, "failed": 1}


def test_a_worker_without_the_controllers_server_is_a_usage_error(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure_node(node):
            node.workerinput.pop("litmus_server_file", None)
        """
    )
    station_project.makepyfile("def test_x(dmm): pass")
    result = station_project.runpytest("--station", "cell-7", "--mock", "-n", "1")
    assert result.ret != 0
    result.stdout.re_match_lines([r".*got no instrument server from the controller.*"], consecutive=False)


def test_examples_run_on_two_workers(station_project: pytest.Pytester) -> None:
    shutil.copytree(REPO / "examples", station_project.path / "examples")
    result = station_project.runpytest("examples", "--station", "cell-7", "--mock", "-n", "2")
    result.assert_outcomes(passed=6, xfailed=1)
    events = session_events(station_project)
    (srq,) = by_type(events, "SrqWait")  # armed and waited in the holder, for a worker's test
    assert srq["nodeid"].endswith("test_triggered_reading_by_srq") and srq["caller"]["worker"]


def test_a_held_instrument_is_reported_in_the_workers_test(station_project: pytest.Pytester) -> None:
    from pytest_litmus import connect

    real_station(station_project)
    station_project.makepyfile("def test_x(dmm): pass")
    with connect("cell-7", data_dir=station_project.path / "home") as other:
        other.instrument("dmm")  # another session holds the DMM for the whole run
        result = station_project.runpytest_subprocess("--station", "cell-7", "-n", "2")
    result.assert_outcomes(errors=1)
    result.stdout.re_match_lines(
        [rf".*ResourceInUse: .* is in use by .*session {other.session_id}.*"], consecutive=False
    )
