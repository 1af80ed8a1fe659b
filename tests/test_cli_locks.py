"""``litmus locks``: list, watch, release; with holders in real subprocesses."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus.cli import main
from pytest_litmus.cli._output import format_duration, format_table
from pytest_litmus.cli.locks import EXIT_NO_SUCH_LOCK, EXIT_OK, EXIT_REFUSED

_spec = importlib.util.spec_from_file_location("lockprocs", Path(__file__).parent / "lockhelpers" / "procs.py")
assert _spec is not None and _spec.loader is not None
procs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(procs)

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(resource: str, *args: str) -> Any:
        started.append(procs.hold(tmp_path, resource, *args))
        return started[-1]

    yield start
    for child in started:
        child.close()


@pytest.fixture
def litmus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``litmus --data-dir tmp_path ARGS`` in this process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", str(tmp_path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _killed(child: Any) -> Any:
    os.kill(child.pid, signal.SIGKILL)
    child.proc.wait()
    return child


def test_list_empty(litmus: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = litmus("locks")
    assert code == EXIT_OK and out.startswith("no locks in")


def test_list_shows_the_holder(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    child = hold(DMM, "--role", "dmm", "--session", "s-42")
    code, out, _ = litmus("locks")
    header, row = out.splitlines()
    assert code == EXIT_OK and header.split()[:3] == ["RESOURCE", "STATE", "PID"]
    assert row.startswith(DMM) and "held exclusive" in row
    assert f" {child.pid} " in row and "s-42" in row and "cell-7/dmm" in row


def test_list_json(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    readers = [hold(DMM, "--mode", "shared", "--role", "dmm") for _ in range(2)]
    code, out, _ = litmus("locks", "--json")
    doc = json.loads(out)
    [lock] = doc["locks"]
    assert code == EXIT_OK and lock["resource"] == DMM and lock["state"] == "held" and lock["mode"] == "shared"
    assert {h["pid"] for h in lock["holders"]} == {r.pid for r in readers}
    assert lock["held_for"] >= 0 and {"user", "host", "session", "station", "role", "since"} <= set(lock["holders"][0])


def test_watch_is_bounded_by_count(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    hold(DMM)
    code, out, _ = litmus("locks", "--watch", "--count", "3", "--interval", "0.01", "--json")
    frames = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK and len(frames) == 3 and all(f["locks"][0]["state"] == "held" for f in frames)
    code, out, _ = litmus("locks", "--watch", "--count", "2", "--interval", "0.01")
    assert code == EXIT_OK and out.count("# ") == 2 and out.count(DMM) == 2


def test_release_of_a_dead_holder(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    child = _killed(hold(DMM))
    code, out, _ = litmus("locks")
    assert "stale" in out and str(child.pid) in out
    code, out, _ = litmus("locks", "release", DMM)
    assert code == EXIT_OK and f"pid {child.pid}" in out and "gone" in out
    assert litmus("locks")[1].startswith("no locks")


def test_release_refused_for_a_live_holder_then_forced(
    litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]
) -> None:
    child = hold(DMM, "--role", "dmm")
    code, out, err = litmus("locks", "release", DMM)
    assert code == EXIT_REFUSED and out == "" and f"pid {child.pid}" in err and "--force" in err
    code, out, _ = litmus("locks", "release", DMM, "--json")
    doc = json.loads(out)
    assert code == EXIT_REFUSED and doc["error"] == "holder_alive" and doc["holders"][0]["pid"] == child.pid
    code, out, _ = litmus("locks", "release", DMM, "--force", "--json")
    doc = json.loads(out)
    assert code == EXIT_OK and doc["ok"] and doc["action"] == "broken" and doc["holders"][0]["pid"] == child.pid
    child.send("check")
    assert child.expect("lost")["by"] == {}  # nobody has taken it since


def test_force_says_whose_lock_it_broke(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    child = hold(DMM)
    code, out, _ = litmus("locks", "release", DMM, "--force")
    assert code == EXIT_OK and out.startswith(f"broke the lock on {DMM} held by pid {child.pid}")


def test_release_of_no_such_lock(litmus: Callable[..., tuple[int, str, str]]) -> None:
    code, out, err = litmus("locks", "release", DMM)
    assert code == EXIT_NO_SUCH_LOCK and "no lock for" in err
    code, out, _ = litmus("locks", "release", DMM, "--json")
    assert code == EXIT_NO_SUCH_LOCK and json.loads(out)["error"] == "no_such_lock"


def test_usage_errors_exit_2(litmus: Callable[..., tuple[int, str, str]]) -> None:
    with pytest.raises(SystemExit) as info:
        litmus("locks", "--interval", "0")
    assert info.value.code == 2


def test_console_script_exit_codes_and_data_dir_from_env(tmp_path: Path, hold: Callable[..., Any]) -> None:
    env = {**os.environ, "LITMUS_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "pytest_litmus.cli", "locks"]
    gone = subprocess.run([*cmd, "release", DMM], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert gone.returncode == EXIT_NO_SUCH_LOCK
    child = hold(DMM)
    listed = subprocess.run([*cmd, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert listed.returncode == EXIT_OK and json.loads(listed.stdout)["locks"][0]["holders"][0]["pid"] == child.pid


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0ms"),
        (0.0000123, "0.0123ms"),
        (0.0021, "2.1ms"),
        (0.25, "250ms"),
        (0.9999, "1s"),
        (4.25, "4.25s"),
        (59.94, "59.9s"),
        (59.96, "1m00s"),
        (303, "5m03s"),
        (7440, "2h04m"),
    ],
)
def test_one_duration_format(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_one_table_printer_aligns_columns_and_trims_trailing_blanks() -> None:
    assert format_table(("A", "LONGER"), [("wide cell", ""), ("x", "y")]).splitlines() == [
        "A          LONGER",
        "wide cell",
        "x          y",
    ]


@pytest.mark.parametrize(
    "bad",
    ["../x", "/etc/passwd", "locks/../../x", "a\x00b", "x" * 300, "..", "", "a\\b", "line\nbreak"],
    ids=["dotdot", "absolute", "nested", "nul", "overlong", "dots", "empty", "backslash", "newline"],
)
def test_release_refuses_a_bad_name_before_touching_any_file(
    litmus: Callable[..., tuple[int, str, str]], tmp_path: Path, bad: str
) -> None:
    outside = tmp_path / "x.lock"  # where locks/../x.lock would point
    outside.write_text("not a lock")
    (tmp_path / "locks").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for extra in ((), ("--force",)):
        code, out, err = litmus("locks", "release", bad, *extra)
        assert code == 2 and out == "" and len(err.splitlines()) == 1 and "RESOURCE" in err, (code, out, err)
    code, out, _ = litmus("locks", "release", bad, "--json")
    assert code == 2 and json.loads(out)["error"] == "usage"
    assert outside.read_text() == "not a lock" and sorted(p.name for p in tmp_path.rglob("*")) == before


def test_release_lock_refuses_a_path_as_a_lock_name(tmp_path: Path) -> None:
    from pytest_litmus.errors import InvalidName, LitmusError
    from pytest_litmus.locks import release_lock

    (tmp_path / "x.lock").write_text("")
    with pytest.raises(InvalidName) as info:
        release_lock(tmp_path, "../x", force=True)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LitmusError) and info.value.value == "../x"
    assert (tmp_path / "x.lock").exists()


def test_a_serial_address_with_slashes_is_a_name_not_a_path(
    litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]
) -> None:
    serial = "ASRL/dev/ttyUSB0::INSTR"
    code, _, err = litmus("locks", "release", serial)
    assert code == EXIT_NO_SUCH_LOCK, err
    child = hold(serial)
    code, out, _ = litmus("locks", "release", serial, "--force")
    assert code == EXIT_OK and f"pid {child.pid}" in out


def test_release_by_lock_key_still_works(litmus: Callable[..., tuple[int, str, str]], hold: Callable[..., Any]) -> None:
    from pytest_litmus.locks import lock_key

    _killed(hold(DMM))
    code, out, _ = litmus("locks", "release", lock_key(DMM))
    assert code == EXIT_OK and "gone" in out
