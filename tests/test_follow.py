"""Following an event file: replay then live, nothing lost or repeated, torn lines held back."""

from __future__ import annotations

import json
import os
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


# --------------------------------------------------------------------------- the descriptor


def _open_on(path: Path) -> int:
    """How many of this process's descriptors are open on ``path`` (Linux: /proc/self/fd)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd to count open descriptors")
    count = 0
    for fd in fds.iterdir():
        try:
            count += Path(os.readlink(fd)) == path.resolve()
        except OSError:  # the descriptor listing /proc/self/fd itself, closed since
            pass
    return count


def test_leaving_an_iteration_closes_the_file_and_the_next_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(_line(i) for i in range(1, 6)))
    follower = iter_follow(path, timeout=0)
    for event in follower:
        if event["seq"] == 2:
            assert _open_on(path) == 1
            break
    assert _open_on(path) == 0  # closed by the break, not left to the garbage collector
    with path.open("ab") as fh:
        fh.write(_line(6)[:9])  # a torn line: held back
    assert [e["seq"] for e in follower.drain()] == [3, 4, 5]  # reopened where the last read ended
    with path.open("ab") as fh:
        fh.write(_line(6)[9:] + _line(7, "SessionEnded"))
    assert [e["seq"] for e in follower] == [6, 7]
    assert follower.stop_reason == "ended" and _open_on(path) == 0


def test_close_and_with_close_for_good(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line(1))
    with Follower(path) as follower:
        assert [e["seq"] for e in follower.drain()] == [1]
        assert _open_on(path) == 1  # kept open between drains
    assert _open_on(path) == 0
    with path.open("ab") as fh:
        fh.write(_line(2))
    assert follower.drain() == [] and _open_on(path) == 0  # closed: not reopened
    assert list(follower) == [] and follower.stop_reason == "stopped"


def test_close_from_another_thread_ends_a_waiting_iteration(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line(1))
    follower = iter_follow(path, stop_at_end=True, timeout=None, poll=0.05)
    seen: list[int] = []
    first = threading.Event()

    def run() -> None:
        for event in follower:
            seen.append(event["seq"])
            first.set()

    reader = threading.Thread(target=run)
    reader.start()
    assert first.wait(30)
    follower.close()
    reader.join(30)
    assert not reader.is_alive() and follower.stop_reason == "stopped"
    assert seen == [1] and _open_on(path) == 0
