"""Write faults on the event file: nothing lost silently, no false PASS, no torn line.

Faults are real where the kernel can give them here: ``RLIMIT_FSIZE`` (``EFBIG``,
with a real partial write) in a pytest subprocess, a full tmpfs (``ENOSPC``) and
a read-only one (``EROFS``). ``EIO`` and friends, and "space comes back" on cue,
come from a fault injected at the writer's one ``write`` call.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import start_session

from pytest_litmus import eventfile
from pytest_litmus.cli import main
from pytest_litmus.errors import EventsNotWritten, StationConfigError
from pytest_litmus.events import MAX_TEXT, EventFile, Recorder, read_session
from pytest_litmus.eventtypes import EventType
from pytest_litmus.hooks import LitmusPluginManager

_real_write = os.write


class Disk:
    """A fault at the writer's ``write``: ``errno`` fails every write; ``partial`` bytes get through first."""

    def __init__(self) -> None:
        self.errno: int | None = None
        self.partial = 0
        #: With ``errno`` set: every ``flaky``-th write still succeeds (0: none does).
        self.flaky = 0
        self.calls = 0

    def write(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.errno is None or (self.flaky and self.calls % self.flaky == 0):
            return _real_write(fd, data)
        if self.partial:  # the kernel takes part of the line, then fails the rest
            part, self.partial = self.partial, 0
            return _real_write(fd, data[:part])
        raise OSError(self.errno, os.strerror(self.errno))


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    fault = Disk()
    monkeypatch.setattr(eventfile, "_write", fault.write)
    return fault


def check_accounting(path: Path) -> dict[str, Any]:
    """Every line parses, no line is torn, and present + EventsLost ranges are exactly seq 1..max."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    events = [json.loads(line) for line in lines]  # every line a whole JSON object
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    lost: list[int] = []
    markers = [e for e in events if e["type"] == EventType.EVENTS_LOST]
    for m in markers:
        assert m["count"] == m["last_seq"] - m["first_seq"] + 1
        lost += range(m["first_seq"], m["last_seq"] + 1)
    assert not set(lost) & set(seqs)
    assert sorted(seqs + lost) == list(range(1, max(seqs) + 1))
    return {"events": events, "markers": markers, "lost": len(lost)}


# --------------------------------------------------------------------------- the writer itself


def _recorder(path: Path) -> Recorder:
    return Recorder("s-1", EventFile(path), LitmusPluginManager())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EROFS])
def test_a_failed_write_waits_in_memory_and_reaches_the_file_when_writing_works(
    tmp_path: Path, disk: Disk, code: int
) -> None:
    rec = _recorder(tmp_path / "e.jsonl")
    rec.emit("A", {})
    disk.errno, disk.partial = code, 9
    for i in range(20):
        rec.emit(EventType.MEASUREMENT, {"i": i, "nodeid": "t::x"})
    assert rec.unrecorded("t::x") == ["Measurement"] * 20
    fault = rec.fault()
    assert fault is not None and fault.pending == 20 and fault.lost == 0
    assert os.strerror(code) in fault.reason
    assert (tmp_path / "e.jsonl").read_bytes()[-1:] == b"\n"  # the partial line was cut back
    disk.errno = None
    rec.emit("B", {})
    assert rec.fault() is None and rec.unrecorded("t::x") == []
    rec.close()
    checked = check_accounting(tmp_path / "e.jsonl")
    assert [e["type"] for e in checked["events"]] == ["A", *["Measurement"] * 20, "B"]


def test_an_overflow_becomes_one_events_lost_with_the_exact_range(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventfile, "MAX_PENDING_EVENTS", 10)
    rec = _recorder(tmp_path / "e.jsonl")
    for _ in range(3):
        rec.emit("A", {})
    disk.errno = errno.ENOSPC
    for i in range(25):
        rec.emit(EventType.TEST_OUTCOME, {"nodeid": f"t::{i}", "outcome": "passed"})
    fault = rec.fault()
    assert fault is not None and (fault.pending, fault.lost, fault.ranges) == (10, 15, ((14, 28),))
    assert rec.unrecorded("t::24") == ["TestOutcome"]  # dropped: still known to be missing
    disk.errno = None
    rec.emit("B", {})
    rec.close()
    checked = check_accounting(tmp_path / "e.jsonl")
    (marker,) = checked["markers"]
    assert (marker["count"], marker["first_seq"], marker["last_seq"]) == (15, 14, 28)
    assert marker["reason"] == "[Errno 28] No space left on device"
    assert [e["seq"] for e in checked["events"]][-2:] == [29, 30]  # B, then the marker with the next seq


def test_an_overflow_by_bytes_counts_too(tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventfile, "MAX_PENDING_BYTES", 2000)
    rec = _recorder(tmp_path / "e.jsonl")
    disk.errno = errno.EIO
    for _ in range(10):
        rec.emit("Blob", {"data": "x" * 900})
    fault = rec.fault()
    assert fault is not None and fault.pending == 2 and fault.lost == 8


@pytest.mark.parametrize("flaky", [2, 3, 5])
def test_a_flaky_disk_keeps_every_seq_accounted_for(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch, flaky: int
) -> None:
    """Writes fail and succeed in turn, so waiting lines drain part way while events are dropped."""
    monkeypatch.setattr(eventfile, "MAX_PENDING_EVENTS", 4)
    rec = _recorder(tmp_path / "e.jsonl")
    disk.errno, disk.flaky = errno.ENOSPC, flaky
    for i in range(300):
        if i % 7 == 0:
            disk.partial = 3
        rec.emit("X", {"i": i})
    disk.errno = None
    rec.close()
    checked = check_accounting(tmp_path / "e.jsonl")
    fault = rec.fault()
    assert checked["lost"] == (fault.lost if fault is not None else 0)
    assert (len(checked["markers"]) > 1) == (flaky > 2)  # one write in two keeps up with the events


def test_a_line_that_cannot_be_cut_back_blocks_writing_until_it_can(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _recorder(tmp_path / "e.jsonl")
    rec.emit("A", {})
    truncate = os.ftruncate
    monkeypatch.setattr(os, "ftruncate", lambda fd, n: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    disk.errno, disk.partial = errno.ENOSPC, 5
    rec.emit("B", {})
    disk.errno = None
    rec.emit("C", {})  # the torn part of B is still there: nothing is appended after it
    assert read_session(tmp_path / "e.jsonl").torn
    monkeypatch.setattr(os, "ftruncate", truncate)
    rec.emit("D", {})
    rec.close()
    assert [e["type"] for e in check_accounting(tmp_path / "e.jsonl")["events"]] == ["A", "B", "C", "D"]


def test_events_still_waiting_at_close_are_lost_and_reported(tmp_path: Path, disk: Disk) -> None:
    rec = _recorder(tmp_path / "e.jsonl")
    rec.emit("A", {})
    disk.errno = errno.ENOSPC
    for _ in range(4):
        rec.emit("B", {})
    rec.close()
    fault = rec.fault()
    assert fault is not None and (fault.pending, fault.lost, fault.ranges) == (0, 4, ((2, 5),))
    error = fault.error("s-1")
    assert isinstance(error, OSError) and "4 events of session s-1 could not be written (seq 2-5)" in str(error)


def test_instrument_calls_return_their_values_under_a_fault_even_with_warnings_as_errors(
    project: Path, disk: Disk
) -> None:
    import warnings

    station = start_session(project / "home")
    dmm = station.instrument("dmm")
    disk.errno = errno.EIO
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = [dmm.measure_voltage() for _ in range(200)]
    assert all(isinstance(v, float) for v in values)
    disk.errno = None
    station.stop()
    assert check_accounting(station.event_log)["lost"] == 0


# --------------------------------------------------------------------------- connect() sessions


def test_a_connect_session_that_lost_events_raises_on_stop_and_ends_errored(
    project: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventfile, "MAX_PENDING_EVENTS", 5)
    station = start_session(project / "home")
    disk.errno = errno.ENOSPC
    for i in range(20):
        station.measure(f"m{i}", 1.0)
    disk.errno = None
    with pytest.raises(EventsNotWritten) as caught:
        station.stop("passed")
    assert caught.value.lost == 15 and str(station.event_log) in str(caught.value)
    assert station.outcome == "errored"
    checked = check_accounting(station.event_log)
    ended = checked["events"][-1]  # the marker was written first, as soon as the disk took lines again
    assert ended["type"] == EventType.SESSION_ENDED and ended["outcome"] == "errored" and ended["events_lost"] == 15


def test_a_with_block_that_raised_keeps_its_error_and_gets_a_note(project: Path, disk: Disk) -> None:
    from pytest_litmus import connect

    with pytest.raises(ZeroDivisionError) as caught, connect("cell-7", data_dir=project / "home", mock=True) as station:
        disk.errno = errno.ENOSPC
        station.measure("v", 1.0)
        1 / 0  # noqa: B018
    assert any("could not be written" in note for note in caught.value.__notes__)


def test_an_event_file_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the data dir should be")
    expected = r"home: data_dir: expected a directory this user can create sessions in, got .*Not a directory: .*events"
    with pytest.raises(StationConfigError, match=expected):
        start_session(tmp_path / "home")


# --------------------------------------------------------------------------- strings


def test_a_one_megabyte_string_is_cut_at_max_text_in_every_event(project: Path) -> None:
    huge = "n" * (1 << 20)
    station = start_session(project / "home")
    dmm = station.instrument("dmm")
    station.test_started("t::" + huge)
    station.measure(huge, 1.0, units=huge)
    dmm.write(huge)
    station.observe("k", huge)
    station.stop()
    cut = f"{'n' * MAX_TEXT}...[{len(huge)} chars]"
    events = read_session(station.event_log).events
    (m,) = [e for e in events if e["type"] == EventType.MEASUREMENT]
    assert (
        m["name"] == cut and m["units"] == cut and m["nodeid"] == f"t::{'n' * (MAX_TEXT - 3)}...[{len(huge) + 3} chars]"
    )
    (obs,) = [e for e in events if e["type"] == EventType.OBSERVATION]
    assert obs["value"] == cut
    (write,) = [e for e in events if e.get("method") == "write"]
    assert write["args"] == [cut]
    for event in events:
        assert len(json.dumps(event)) < 6 * MAX_TEXT
    assert station.event_log.stat().st_size < 64 * MAX_TEXT


def test_the_call_path_cuts_long_errors_and_test_ids_with_and_without_subscribers(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_litmus.drivers import Dmm

    def fail(self: Any, *args: Any) -> None:
        raise ValueError("E" * 10_000)

    monkeypatch.setattr(Dmm, "measure_voltage", fail)
    station = start_session(project / "home")
    dmm = station.instrument("dmm")
    station.nodeid = "t::" + "i" * 10_000
    for subscribed in (False, True):
        if subscribed:
            station.hooks.register(type("Sub", (), {"litmus_event": lambda self, event: None})(), "sub")
        with pytest.raises(ValueError, match="EEE"):
            dmm.measure_voltage("A" * 10_000)
    station.stop()
    calls = [e for e in read_session(station.event_log).events if e["type"] == EventType.INSTRUMENT_CALL]
    assert len(calls) >= 2
    for call in calls[-2:]:
        assert call["nodeid"].endswith("...[10003 chars]") and len(call["nodeid"]) < MAX_TEXT + 30
        assert call["args"][0].endswith("...[10000 chars]") and len(call["args"][0]) < MAX_TEXT + 30
        assert call["error"].endswith(f"...[{len('ValueError: ') + 10_000} chars]")


# --------------------------------------------------------------------------- readers


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(lines))
    return path


def _line(seq: int, type_: str, **fields: Any) -> bytes:
    return (json.dumps({"seq": seq, "ts": 1.0e9 + seq, "session": "s", "type": type_, **fields}) + "\n").encode()


def test_show_and_sessions_flag_a_seq_gap_without_a_marker_and_skip_a_torn_middle_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_lines(
        tmp_path / "sessions" / "aaaa-gap" / "events.jsonl",
        [
            _line(1, "SessionStarted", station="cell-7", host="elsewhere", pid=1, argv=[], mock=True),
            _line(2, "TestStarted", nodeid="t::a"),
            b'{"seq":3,"ts":1000000003.0,"session":"s","ty',  # torn in the middle (an older writer)
            b"\n",
            _line(7, "TestOutcome", nodeid="t::a", outcome="passed", duration=0.1),
            _line(8, "SessionEnded", outcome="passed", counts={"passed": 1}),
        ],
    )
    log = read_session(path)
    assert log.bad_lines == 1 and [e["seq"] for e in log.events] == [1, 2, 7, 8]
    assert log.gaps().unmarked == ((3, 6),)
    # a damaged line is reported (exit 2, one line on stderr) after what can be read is shown
    assert main(["--data-dir", str(tmp_path), "show", "aaaa"]) == 2
    captured = capsys.readouterr()
    assert "LOST      4 events missing without a marker (seq 3-6)" in captured.out
    assert "1 unreadable lines skipped" in captured.out
    assert "line 3" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert main(["--data-dir", str(tmp_path), "sessions"]) == 0
    assert "events lost (unmarked)" in capsys.readouterr().out
    main(["--data-dir", str(tmp_path), "sessions", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["lost"] >= 3 and row["unmarked"] >= 3


def test_show_and_sessions_report_an_events_lost_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_lines(
        tmp_path / "sessions" / "bbbb-lost" / "events.jsonl",
        [
            _line(1, "SessionStarted", station="cell-7", host="elsewhere", pid=1, argv=[], mock=True),
            _line(552, "TestOutcome", nodeid="t::a", outcome="passed", duration=0.1),
            _line(553, "EventsLost", count=550, first_seq=2, last_seq=551, reason="[Errno 28] No space left on device"),
            _line(554, "SessionEnded", outcome="errored", counts={"passed": 1}, events_lost=550),
        ],
    )
    assert main(["--data-dir", str(tmp_path), "show", "bbbb"]) == 0
    assert "LOST      550 events lost (EventsLost, seq 2-551)" in capsys.readouterr().out
    main(["--data-dir", str(tmp_path), "sessions", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["lost"], row["unmarked"]) == (550, 0)


def test_a_marker_naming_absurd_seqs_costs_nothing(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "s" / "events.jsonl",
        [_line(1, "A"), _line(10**15, "EventsLost", count=1, first_seq=10**12, last_seq=10**14)],
    )
    gaps = read_session(path).gaps()
    assert gaps.unmarked == ((2, 10**12 - 1), (10**14 + 1, 10**15 - 1))


# --------------------------------------------------------------------------- under pytest


INJECTED = """
import errno, os
import pytest
from pytest_litmus import eventfile

eventfile.MAX_PENDING_EVENTS = 20
_real = os.write
FAULT = {"errno": None, "partial": 0}

def _write(fd, data):
    if FAULT["errno"] is None:
        return _real(fd, data)
    if FAULT["partial"]:
        part, FAULT["partial"] = FAULT["partial"], 0
        return _real(fd, data[:part])
    raise OSError(FAULT["errno"], os.strerror(FAULT["errno"]))

_saved = eventfile._write, eventfile.MAX_PENDING_EVENTS
eventfile._write = _write

def pytest_unconfigure(config):  # pytester runs this in the same process: put the writer back
    eventfile._write, eventfile.MAX_PENDING_EVENTS = _saved

@pytest.fixture
def disk():
    return FAULT
"""

SUITE = """
import errno

def test_before(dmm, measure):
    measure("v", dmm.measure_voltage())

def test_disk_fills(dmm, disk, measure):
    disk["errno"], disk["partial"] = errno.{code}, 11
    values = [dmm.measure_voltage() for _ in range(50)]
    assert all(isinstance(v, float) for v in values)
    measure("vout", values[0], units="V")

def test_still_full(dmm):
    assert isinstance(dmm.measure_voltage(), float)

def test_space_back(dmm, disk, measure):
    disk["errno"] = None
    measure("v", dmm.measure_voltage())
"""


def _session_file(pytester: pytest.Pytester, home: Path | None = None) -> Path:
    (path,) = ((home or pytester.path / "home") / "sessions").glob("*/events.jsonl")
    return path


@pytest.mark.parametrize("code", ["ENOSPC", "EIO", "EROFS"])
def test_under_pytest_unrecorded_tests_fail_and_the_session_exits_3_with_one_line(
    station_project: pytest.Pytester, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    station_project.makeconftest(INJECTED)
    station_project.makepyfile(test_board=SUITE.replace("{code}", code))
    result = station_project.runpytest(
        "--station=cell-7", "--mock", "-W", "error::pytest_litmus.hooks.SubscriberWarning"
    )
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    reason = os.strerror(getattr(errno, code))
    result.stdout.fnmatch_lines(
        [
            "*_ test_disk_fills _*",
            "litmus could not record this test: 1 Measurement event not written (* events waiting*): "
            f"cannot write *events.jsonl: [[]Errno {getattr(errno, code)}] {reason}",
            "*_ test_still_full _*",
            "litmus could not record this test: its outcome would not be written (* events waiting*",
        ]
    )
    path = _session_file(station_project)
    lines = [line for line in result.stdout.lines if line.startswith("litmus: ") and "could not" in line]
    assert len(lines) == 1
    assert "could not be written (seq " in lines[0] and str(path) in lines[0] and reason in lines[0]
    checked = check_accounting(path)
    (marker,) = checked["markers"]
    assert f"{marker['count']} events of session" in lines[0]
    outcomes = {e["nodeid"].split("::")[-1]: e["outcome"] for e in checked["events"] if e["type"] == "TestOutcome"}
    assert outcomes["test_before"] == outcomes["test_space_back"] == "passed"
    ended = checked["events"][-1]
    assert ended["type"] == "SessionEnded" and ended["outcome"] == "errored" and ended["events_lost"] == marker["count"]
    home = str(station_project.path / "home")
    capsys.readouterr()
    assert main(["--data-dir", home, "show", path.parent.name]) == 0
    assert f"LOST      {marker['count']} events lost (EventsLost, seq" in capsys.readouterr().out
    assert main(["--data-dir", home, "sessions"]) == 0
    assert f"errored, {marker['count']} events lost" in capsys.readouterr().out


def test_under_pytest_space_that_comes_back_in_time_fails_nothing(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(INJECTED)
    station_project.makepyfile(
        """
        import errno
        def test_blip(dmm, disk, measure):
            disk["errno"] = errno.ENOSPC
            v = dmm.measure_voltage()
            disk["errno"] = None
            measure("v", v)
        """
    )
    result = station_project.runpytest("--station=cell-7", "--mock")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert check_accounting(_session_file(station_project))["lost"] == 0


def test_under_pytest_a_skipped_test_whose_outcome_waits_is_an_error(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(INJECTED)
    station_project.makepyfile(
        """
        import errno, pytest
        def test_fill(disk):
            disk["errno"] = errno.EIO
            pytest.skip("no fixture")
        """
    )
    result = station_project.runpytest("--station=cell-7", "--mock")
    result.assert_outcomes(skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_fill*", "*litmus could not record this test*"])
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR


RLIMIT = """
import os, resource, signal
import pytest

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG, not a signal

@pytest.fixture
def fsize_limit(station):
    def limit(extra):
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (station.event_log.stat().st_size + extra, hard))
    def lift():
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return limit, lift
"""

RLIMIT_SUITE = """
def test_limit(dmm, measure, fsize_limit):
    limit, lift = fsize_limit
    limit(300)  # a line or so fits, then one is written in part, then EFBIG
    values = [dmm.measure_voltage() for _ in range(40)]
    assert all(isinstance(v, float) for v in values)
    measure("vout", values[-1], units="V")

def test_lifted(dmm, fsize_limit):
    fsize_limit[1]()
    dmm.measure_voltage()
"""


def test_a_real_efbig_from_rlimit_fsize_fails_the_test_and_leaves_no_torn_line(
    station_project: pytest.Pytester,
) -> None:
    if subprocess.run(["sh", "-c", "ulimit -f"], capture_output=True, text=True).stdout.strip() != "unlimited":
        pytest.skip("this shell already runs under a file size limit")
    station_project.makeconftest(RLIMIT)
    station_project.makepyfile(test_rlimit=RLIMIT_SUITE)
    result = station_project.runpytest_subprocess("--station=cell-7", "--mock", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["litmus could not record this test: 1 Measurement event not written*[[]Errno 27] File too large"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # everything was written in the end: nothing lost
    checked = check_accounting(_session_file(station_project))
    assert checked["lost"] == 0
    calls = [e for e in checked["events"] if e["type"] == "InstrumentCall" and "test_limit" in str(e["nodeid"])]
    assert len(calls) == 40


# --------------------------------------------------------------------------- real file systems (root only)


def _mount(target: Path, options: str) -> Callable[[], None]:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI should allow a tmpfs mount: {done.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip() or 'not root'})")
    return lambda: subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def small_disk(station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = station_project.path / "tiny"
    unmount = _mount(home, "size=256k")
    monkeypatch.setenv("LITMUS_HOME", str(home))
    yield home
    unmount()


def test_a_full_tmpfs_gives_real_enospc_and_space_coming_back_is_accounted(
    station_project: pytest.Pytester, small_disk: Path
) -> None:
    station_project.makeconftest(
        """
        from pytest_litmus import eventfile
        _saved, eventfile.MAX_PENDING_EVENTS = eventfile.MAX_PENDING_EVENTS, 15

        def pytest_unconfigure(config):
            eventfile.MAX_PENDING_EVENTS = _saved
        """
    )
    station_project.makepyfile(
        f"""
        import os
        FILLER = {str(small_disk / "filler")!r}

        def test_fill(dmm):
            fd = os.open(FILLER, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"x" * 4096):
                    pass
            except OSError:  # the disk is full
                pass
            finally:
                os.close(fd)
            values = [dmm.measure_voltage() for _ in range(60)]
            assert all(isinstance(v, float) for v in values)

        def test_space_back(dmm):
            os.remove(FILLER)
            dmm.measure_voltage()
        """
    )
    result = station_project.runpytest("--station=cell-7", "--mock")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["litmus: * events of session * could not be written (seq *No space left on device"])
    checked = check_accounting(_session_file(station_project, small_disk))
    assert checked["lost"] > 0 and len(checked["markers"]) == 1


def test_a_read_only_data_dir_stops_the_run_before_any_test_with_one_error(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = station_project.path / "ro"
    unmount = _mount(home, "ro,size=64k")
    try:
        monkeypatch.setenv("LITMUS_HOME", str(home))
        station_project.makepyfile("def test_x(dmm): dmm.measure_voltage()")
        result = station_project.runpytest("--station=cell-7", "--mock")
    finally:
        unmount()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*litmus: *ro: data_dir: expected a directory this user can write*read-only file system*"]
    )
