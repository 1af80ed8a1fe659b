"""Following an event file: replay then live, nothing lost or repeated, torn lines held back."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import spawn, start_session

from pytest_litmus.follow import Follower, follow, iter_follow


def _line(seq: int, kind: str = "Observation", **fields: Any) -> bytes:
    return (json.dumps({"seq": seq, "ts": float(seq), "session": "s", "type": kind, **fields}) + "\n").encode()


def test_replay_then_live_while_another_thread_writes(tmp_path: Path) -> None:
    station = start_session(tmp_path)
    halfway, subscribed = threading.Event(), threading.Event()

    def write() -> None:
        for i in range(1500):
            station.observe("i", i)
            if i == 500:
                halfway.set()
                subscribed.wait(30)  # the rest is written while the subscriber is live
        station.stop()

    writer = threading.Thread(target=write)
    writer.start()
    assert halfway.wait(30)
    seen: list[dict[str, Any]] = []
    ended = threading.Event()

    def collect(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["type"] == "SessionEnded":
            ended.set()

    unsubscribe = follow(station.event_log, collect)
    replayed = len(seen)
    subscribed.set()
    assert ended.wait(30)
    unsubscribe()
    writer.join()
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert len(seen) == len(station.events())
    assert 500 < replayed < len(seen)


def test_a_writer_process_tearing_every_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = spawn("writer", str(path), "3000")
    follower = iter_follow(path, timeout=60)
    seqs = [e["seq"] for e in follower]
    assert writer.wait(timeout=30) == 0
    assert follower.stop_reason == "ended"
    assert seqs == list(range(1, 3002))
    assert follower.bad_lines == 0


def test_a_torn_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    follower = Follower(path)
    assert follower.drain() == []  # no file yet
    whole, torn = _line(1), _line(2)
    path.write_bytes(whole + torn[:7])
    assert [e["seq"] for e in follower.drain()] == [1]
    assert follower.drain() == []
    with path.open("ab") as fh:
        fh.write(torn[7:] + _line(3, "SessionEnded"))
    assert [e["seq"] for e in follower.drain()] == [2, 3]
    assert follower.stop_reason == "ended"


def test_filters_and_since(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        _line(1, "InstrumentCall", role="dmm")
        + _line(2, "InstrumentCall", role="psu")
        + _line(3, "Measurement")
        + b"not json\n"
        + _line(4, "InstrumentCall", role="dmm")
        + _line(5, "SessionEnded")
    )
    assert [e["seq"] for e in iter_follow(path, role="dmm")] == [1, 4]
    assert [e["seq"] for e in iter_follow(path, event_type=["Measurement", "SessionEnded"])] == [3, 5]
    assert [e["seq"] for e in iter_follow(path, since=3)] == [4, 5]  # seq: after it
    assert [e["seq"] for e in iter_follow(path, since=3.0)] == [3, 4, 5]  # ts: from it
    follower = iter_follow(path)
    list(follower)
    assert follower.bad_lines == 1
    with pytest.raises(TypeError):
        iter_follow(path, since=True)


def test_follow_replays_synchronously_and_unsubscribes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line(1) + _line(2))
    seen: list[int] = []
    unsubscribe = follow(path, lambda e: seen.append(e["seq"]))
    assert seen == [1, 2]  # the replay is done when follow() returns
    unsubscribe()
    unsubscribe()
    with path.open("ab") as fh:
        fh.write(_line(3))
    assert seen == [1, 2]


def test_a_failing_subscriber_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line(1) + _line(2, "SessionEnded"))

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    with pytest.warns(UserWarning, match="subscriber bug"):
        follow(path, broken)()


def test_stops_when_the_writer_died_without_ending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = spawn("writer", str(tmp_path / "other.jsonl"), "1")
    assert writer.wait(timeout=30) == 0  # a pid that is gone now
    path.write_bytes(_line(1, "SessionStarted", pid=writer.pid, host=__import__("socket").gethostname()))
    follower = iter_follow(path, timeout=60)
    assert [e["seq"] for e in follower] == [1]
    assert follower.stop_reason == "writer-gone"
