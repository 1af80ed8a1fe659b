"""Process identity and liveness (psutil), the one back-off schedule, the one atomic writer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_litmus import atomicfile
from pytest_litmus.backoff import Backoff
from pytest_litmus.processes import current_user, holder_alive, identity, pid_alive, process_start, this_process

# --------------------------------------------------------------------------- identity and liveness


def test_this_process_names_pid_host_user_start_and_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    me = this_process()
    assert me["pid"] == os.getpid() and me["user"] == current_user() and isinstance(me["start"], float)
    assert holder_alive(me)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert identity()["worker"] == "gw3"
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert "worker" not in identity()


def test_a_reused_pid_is_told_by_its_start_time() -> None:
    me = this_process()
    assert holder_alive(me)
    assert not holder_alive({**me, "start": me["start"] - 3600})  # same pid, another process
    assert holder_alive({**me, "start": None})  # no start time: the pid decides


def test_records_from_other_hosts_count_as_alive_and_broken_ones_as_dead() -> None:
    assert holder_alive({"pid": 1, "host": "not-" + identity()["host"]})
    assert not holder_alive({"host": identity()["host"]})
    assert not holder_alive({"pid": "x", "host": identity()["host"]})


def test_a_forked_child_has_its_own_identity_and_is_dead_once_reaped() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    parent = this_process()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its identity and leave
        os.write(write, json.dumps(this_process()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = json.loads(pipe.read())
    assert child["pid"] == pid != parent["pid"] and child["host"] == parent["host"]
    if hasattr(os, "waitid"):  # exited but not reaped: a zombie holds nothing
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        assert not pid_alive(pid) and not holder_alive(child)
    os.waitpid(pid, 0)
    assert not pid_alive(pid) and not holder_alive(child) and process_start(pid) is None


def test_a_live_child_is_alive_with_its_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        start = process_start(child.pid)
        assert start is not None and pid_alive(child.pid)
        assert holder_alive({"pid": child.pid, "host": identity()["host"], "start": start})
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert not pid_alive(child.pid)


# --------------------------------------------------------------------------- back-off


def test_backoff_ramps_to_its_cap() -> None:
    steps = Backoff(first=0.001, factor=2.0, cap=0.005).intervals()
    assert [next(steps) for _ in range(6)] == [0.001, 0.002, 0.004, 0.005, 0.005, 0.005]


def test_jitter_only_shortens_a_pause() -> None:
    steps = Backoff(first=0.01, factor=1.0, cap=0.01, jitter=0.5).intervals()
    assert all(0.005 <= next(steps) <= 0.01 for _ in range(200))


def test_a_poll_knows_its_deadline_ramp_and_cap() -> None:
    poll = Backoff(first=0.001, factor=10.0, cap=0.1).start(None)
    assert not poll.expired and poll.remaining is None and not poll.at_cap
    assert [poll.next_pause() for _ in range(3)] == [0.001, 0.01, 0.1]
    assert poll.at_cap
    poll.reset()
    assert poll.next_pause() == 0.001
    now = Backoff().start(0)
    assert now.expired and now.remaining == 0.0 and now.next_pause() == 0.0
    bounded = Backoff(first=10.0, cap=10.0).start(0.5)
    assert bounded.next_pause() <= 0.5  # never sleeps past the deadline


def test_a_stop_event_ends_a_pause_at_once() -> None:
    stop = threading.Event()
    stop.set()
    assert Backoff(first=60.0, cap=60.0).start().sleep(stop) is True


@pytest.mark.parametrize("bad", [{"first": 0}, {"first": 1.0, "cap": 0.5}, {"factor": 0.5}, {"jitter": 2}])
def test_backoff_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)


# --------------------------------------------------------------------------- atomic writes


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomicfile.write_json(target, {"b": 1, "a": [1, 2]})
    atomicfile.write_json(target, {"round": 2})
    assert json.loads(target.read_text()) == {"round": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_new_file_gets_the_mode_asked_for(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomicfile.write_bytes(tmp_path / "secret.json", b"{}", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    atomicfile.write_json(target, {"v": 1})

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomicfile.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomicfile.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_crashed_writers_temporary_is_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    (tmp_path / f".x.json.{os.getpid()}.{threading.get_ident()}.tmp").write_text("torn")
    atomicfile.write_json(target, [1])
    assert json.loads(target.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_readers_never_see_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    atomicfile.write_json(target, {"n": 0, "pad": "x" * 100_000})
    done = threading.Event()

    def write() -> None:
        for n in range(1, 200):
            atomicfile.write_json(target, {"n": n, "pad": "x" * (100_000 + n)})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        json.loads(target.read_bytes())  # raises on a torn read
    writer.join()
    assert json.loads(target.read_bytes())["n"] == 199
