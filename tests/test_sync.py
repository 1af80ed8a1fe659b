"""The sync barrier across processes: release, reuse, a dead party, a timeout."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from serverhelpers import read_json_line, spawn

from pytest_litmus.sync import SyncError, SyncResult, SyncTimeout, reset, sync


def test_three_processes_meet(tmp_path: Path) -> None:
    parties = [spawn("syncparty", str(tmp_path), "start", "3", "60") for _ in range(3)]
    arrivals = sorted(read_json_line(p)["arrived"] for p in parties)
    results = [read_json_line(p) for p in parties]
    assert [p.wait(timeout=30) for p in parties] == [0, 0, 0]
    assert arrivals == [1, 2, 3]
    assert {r["generation"] for r in results} == {0}
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert all(len(r["arrived"]) == 3 and r["parties"] == 3 for r in results)


def test_a_killed_party_breaks_the_barrier_for_the_others(tmp_path: Path) -> None:
    waiting = spawn("syncparty", str(tmp_path), "slots", "3", "60")
    doomed = spawn("syncparty", str(tmp_path), "slots", "3", "60")
    assert read_json_line(waiting)["arrived"] + read_json_line(doomed)["arrived"] == 3
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    outcome = read_json_line(waiting)
    assert waiting.wait(timeout=30) == 1
    assert outcome["error"] == "SyncError"  # detected, not the 60 s timeout
    assert "is gone" in outcome["message"]
    with pytest.raises(SyncError, match="broken"):
        sync(tmp_path, "slots", 3, timeout=0)  # stays broken until reset


def test_a_timeout_breaks_it_and_reset_mends_it(tmp_path: Path) -> None:
    with pytest.raises(SyncTimeout, match="1 of 2 parties") as timed_out:
        sync(tmp_path, "t", 2, timeout=0.01)
    assert isinstance(timed_out.value, TimeoutError)
    with pytest.raises(SyncError, match="timed out"):
        sync(tmp_path, "t", 2, timeout=0.01)
    reset(tmp_path, "t")
    assert sync(tmp_path, "t", 1).arrived  # a lone party passes at once


def test_rounds_reuse_the_name(tmp_path: Path) -> None:
    results: list[SyncResult] = []
    lock = threading.Lock()

    def party() -> None:
        for _ in range(3):
            result = sync(tmp_path / "events.jsonl", "round", 3, timeout=60)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=party) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.generation for r in results) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (tmp_path / "sync" / "round" / "state.json").is_file()


def test_disagreeing_party_counts_and_bad_names(tmp_path: Path) -> None:
    first = spawn("syncparty", str(tmp_path), "n", "2", "60")
    assert read_json_line(first)["arrived"] == 1
    with pytest.raises(SyncError, match="expects 3 parties, the others 2"):
        sync(tmp_path, "n", 3, timeout=0)
    assert sync(tmp_path, "n", 2, timeout=60).index == 1
    assert first.wait(timeout=30) == 0
    with pytest.raises(ValueError):
        sync(tmp_path, "../x", 2)
