"""Bad input, as an adversary would give it: every ``litmus`` command on damaged files, bad numbers,
``litmus emulate`` on bad files and ports, measurement limits, and a stale ``$LITMUS_SERVER``.

Commands run as real subprocesses. A damaged file is exit 2 and one line on stderr naming the file
(and the line, for an event file), never a traceback; a bad number is argparse's exit 2.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import connect
from pytest_litmus.connection import StaleServerWarning
from pytest_litmus.errors import LimitError, LimitTypeError, ServerUnavailable
from pytest_litmus.locks import lock_key
from pytest_litmus.measurements import judge

SID = "0badf00d-1111-2222-3333-444455556666"
HOST = os.uname().nodename


def _event(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": 1_700_000_000.0 + seq, "session": SID, "type": type_, **fields}


GOOD = [
    _event(1, "SessionStarted", station="cell-7", mock=True, host=HOST, user="op", pid=1, argv=["pytest"]),
    _event(2, "TestStarted", nodeid="t.py::test_rail"),
    _event(
        3,
        "Measurement",
        name="vout",
        value=3.3,
        units="V",
        low=3.2,
        high=3.4,
        outcome="passed",
        nodeid="t.py::test_rail",
    ),
    _event(4, "TestOutcome", nodeid="t.py::test_rail", outcome="passed", duration=0.5, message=None),
    _event(5, "SessionEnded", outcome="passed", counts={"passed": 1, "measurements_passed": 1}),
]


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def _with(index: int, **fields: Any) -> bytes:
    events = [dict(e) for e in GOOD]
    events[index].update(fields)
    return b"\n".join(_lines(events)) + b"\n"


def _replace_line(index: int, raw: bytes) -> bytes:
    lines = _lines(GOOD)
    lines[index] = raw
    return b"\n".join(lines) + b"\n"


#: Damaged event files: name -> (bytes, the line reported; None: the whole file).
CORRUPT: dict[str, tuple[bytes, int | None]] = {
    "seq-not-int": (_with(0, seq="x"), 1),
    "ts-null": (_with(0, ts=None), 1),
    "ts-overflow": (_with(0, ts=1e300), 1),
    "pid-not-int": (_with(0, pid="abc"), 1),
    "json-list": (_replace_line(0, b"[1, 2, 3]"), 1),
    "truncated-line": (_replace_line(2, _lines(GOOD)[2][:25]), 3),
    "binary-junk": (bytes(range(256)) * 8, 1),
    "non-utf8": (_replace_line(1, b'{"seq": 2, "type": "\xff\xfe"}'), 2),
    "nested-deep": (_replace_line(0, b"[" * 100_000), 1),
    "counts-list": (_with(4, counts=[1, 2]), 5),
    "ts-str-at-end": (_with(4, ts="soon"), 5),
    "low-str": (_with(2, low="x"), 3),
    "duration-str": (_with(3, duration="long"), 4),
    "argv-int": (_with(0, argv=5), 1),
    "empty-file": (b"", None),
}

#: (damage, command): every command on the damage it must notice (``sessions`` reads the first
#: line and the end of a file only, so damage in the middle is for ``show`` and ``tail``).
EVENT_ROWS = [
    *[
        (name, cmd)
        for name in ("seq-not-int", "ts-null", "json-list", "binary-junk", "empty-file")
        for cmd in ("sessions", "show", "tail")
    ],
    *[
        (name, "show")
        for name in (
            "ts-overflow",
            "pid-not-int",
            "truncated-line",
            "non-utf8",
            "nested-deep",
            "counts-list",
            "low-str",
            "duration-str",
            "argv-int",
        )
    ],
    *[(name, "tail") for name in ("truncated-line", "non-utf8", "nested-deep", "ts-str-at-end", "duration-str")],
    *[
        (name, "sessions")
        for name in ("ts-overflow", "pid-not-int", "nested-deep", "counts-list", "ts-str-at-end", "argv-int")
    ],
    ("counts-list", "show --json"),
    ("seq-not-int", "tail --since 3 --json"),
]

COMMANDS = {
    "sessions": ["sessions"],
    "show": ["show", SID[:8]],
    "show --json": ["show", SID[:8], "--json"],
    "tail": ["tail", SID[:8], "--no-follow"],
    "tail --since 3 --json": ["tail", SID[:8], "--no-follow", "--since", "3", "--json"],
}


def litmus(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITMUS_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest_litmus.cli", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        env=env,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 2, one line on stderr naming each of ``names``, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _session_file(data_dir: Path) -> Path:
    path = data_dir / "sessions" / SID / "events.jsonl"
    path.parent.mkdir(parents=True)
    return path


@pytest.mark.parametrize(("damage", "command"), EVENT_ROWS, ids=[f"{d}-{c}" for d, c in EVENT_ROWS])
def test_every_command_on_a_damaged_event_file(tmp_path: Path, damage: str, command: str) -> None:
    data, line = CORRUPT[damage]
    path = _session_file(tmp_path)
    path.write_bytes(data)
    error = assert_one_line_error(litmus("--data-dir", str(tmp_path), *COMMANDS[command]), str(path))
    if line is not None:
        assert f": line {line}: " in error


@pytest.mark.parametrize("command", ["sessions", "show", "tail"])
@pytest.mark.parametrize("kind", ["directory", "dangling-symlink", "symlink-loop", "unreadable"])
def test_an_event_file_that_cannot_be_read(tmp_path: Path, kind: str, command: str) -> None:
    path = _session_file(tmp_path)
    if kind == "directory":
        path.mkdir()
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "gone.jsonl")
    elif kind == "symlink-loop":
        path.symlink_to(path)
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads a mode 000 file")
        path.write_bytes(b"".join(line + b"\n" for line in _lines(GOOD)))
        path.chmod(0)
    assert_one_line_error(litmus("--data-dir", str(tmp_path), *COMMANDS[command]), str(path))


def test_one_bad_line_in_a_long_file_is_reported_and_the_rest_is_shown(tmp_path: Path) -> None:
    events = [GOOD[0], GOOD[1]]
    events += [
        _event(
            10 + i,
            "Measurement",
            name=f"m{i}",
            value=float(i),
            units="V",
            low=0,
            high=1000,
            outcome="passed",
            nodeid="t.py::test_rail",
        )
        for i in range(200)
    ]
    lines = _lines(events) + _lines(GOOD[3:])
    lines[101] = b'{"seq": "x"'
    path = _session_file(tmp_path)
    path.write_bytes(b"\n".join(lines) + b"\n")
    shown = litmus("--data-dir", str(tmp_path), "show", SID)
    error = assert_one_line_error(shown, str(path), ": line 102: ", "(1 bad line skipped)")
    assert "not JSON" in error
    assert "m0 = 0.0 V" in shown.stdout and "m199 = 199.0 V" in shown.stdout and "m99 = " not in shown.stdout
    assert "ended     passed" in shown.stdout  # the session's end was still read
    tailed = litmus("--data-dir", str(tmp_path), "tail", SID, "--no-follow")
    assert_one_line_error(tailed, str(path), ": line 102: ")
    assert tailed.stdout.count("  measure  ") == 199 and "session ended: passed" in tailed.stdout


def test_sessions_lists_the_good_ones_and_names_the_damaged_one(tmp_path: Path) -> None:
    good = tmp_path / "sessions" / "good-session" / "events.jsonl"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"".join(line + b"\n" for line in _lines(GOOD)))
    bad = _session_file(tmp_path)
    bad.write_bytes(b"\x00\x01junk\n")
    result = litmus("--data-dir", str(tmp_path), "sessions")
    assert_one_line_error(result, str(bad), ": line 1: ")
    assert "good-ses" in result.stdout


def test_a_sessions_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "sessions").write_text("not a folder")
    assert_one_line_error(litmus("--data-dir", str(tmp_path), "sessions"), str(tmp_path / "sessions"))


# --------------------------------------------------------------------------- holder records


RECORD = {
    "resource": "GPIB0::17::INSTR",
    "pid": 1,
    "host": HOST,
    "user": "op",
    "since": "2026-01-01T00:00:00+00:00",
    "mode": "exclusive",
    "token": "1-1",
    "inode": 0,
}

BAD_RECORDS: dict[str, Callable[[Path], None]] = {
    "pid-not-int": lambda p: p.write_text(json.dumps({**RECORD, "pid": "abc"})),
    "since-null": lambda p: p.write_text(json.dumps({**RECORD, "since": None})),
    "mode-list": lambda p: p.write_text(json.dumps({**RECORD, "mode": ["exclusive"]})),
    "json-list": lambda p: p.write_text("[1, 2]"),
    "empty-file": lambda p: p.write_bytes(b""),
    "binary-junk": lambda p: p.write_bytes(bytes(range(256))),
    "nested-deep": lambda p: p.write_bytes(b"[" * 100_000),
    "directory": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("damage", list(BAD_RECORDS))
def test_litmus_locks_on_a_damaged_holder_record(tmp_path: Path, damage: str) -> None:
    key = lock_key(RECORD["resource"])
    folder = tmp_path / "locks"
    folder.mkdir()
    (folder / f"{key}.lock").write_text(RECORD["resource"])
    record = folder / f"{key}.1-1.json"
    BAD_RECORDS[damage](record)
    result = litmus("--data-dir", str(tmp_path), "locks")
    assert_one_line_error(result, str(record), "damaged holder record")
    assert "GPIB0::17::INSTR" in result.stdout  # the listing came first


# --------------------------------------------------------------------------- numbers on the command line


BAD_NUMBERS = [
    (["sessions", "--limit", "-3"], "--limit"),
    (["sessions", "--limit", "0"], "--limit"),
    (["sessions", "--limit", "many"], "--limit"),
    (["tail", "--since", "-1"], "--since"),
    (["tail", "--timeout", "-1"], "--timeout"),
    (["tail", "--timeout", "nan"], "--timeout"),
    (["tail", "--timeout", "inf"], "--timeout"),
    (["locks", "--count", "-1"], "--count"),
    (["locks", "--interval", "inf"], "--interval"),
    (["locks", "--count", "0"], "--count"),
    (["emulate", "x.yaml", "--port", "70000"], "--port"),
    (["emulate", "x.yaml", "--port", "-1"], "--port"),
    (["emulate", "x.yaml", "--port", "http"], "--port"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_a_bad_number_is_a_usage_error(tmp_path: Path, argv: list[str], option: str) -> None:
    result = litmus("--data-dir", str(tmp_path), *argv)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {option}: expected" in result.stderr.splitlines()[-1]


# --------------------------------------------------------------------------- litmus emulate


SIMS = Path(__file__).resolve().parent.parent / "stations" / "sims"

EMULATE: dict[str, Callable[[Path], list[str]]] = {
    "missing-file": lambda d: [str(d / "nope.yaml")],
    "a-directory": lambda d: [str(d)],
    "empty-file": lambda d: [_write(d / "empty.yaml", "")],
    "not-yaml": lambda d: [_write(d / "junk.yaml", "key: [unclosed\n  - x: {")],
    "yaml-not-a-sim": lambda d: [_write(d / "list.yaml", "- 1\n- 2\n")],
    "binary": lambda d: [_write(d / "bin.yaml", bytes(range(256)))],
    "unknown-resource": lambda d: [str(SIMS / "cell-7.yaml"), "--resource", "not a resource"],
}


def _write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize("case", list(EMULATE))
def test_emulate_on_a_bad_simulation_file(tmp_path: Path, case: str) -> None:
    argv = EMULATE[case](tmp_path)
    assert_one_line_error(litmus("emulate", *argv), argv[0])


# --------------------------------------------------------------------------- measurement limits


BAD_LIMITS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"value": 3.3, "low": math.nan}, LimitError),
    ({"value": 3.3, "high": math.nan}, LimitError),
    ({"value": 3.3, "low": 3.2, "high": math.inf}, LimitError),
    ({"value": 3.3, "low": -math.inf}, LimitError),
    ({"value": 3.3, "low": 10**400}, LimitError),
    ({"value": 3.3, "low": "3.2"}, LimitTypeError),
    ({"value": 3.3, "high": True}, LimitTypeError),
    ({"value": 3.3, "low": [3.2]}, LimitTypeError),
    ({"value": 3.3, "low": 3.4, "high": 3.2}, LimitError),
    ({"value": "3.3", "low": 3.2}, LimitTypeError),
    ({"value": None, "high": 3.4}, LimitTypeError),
    ({"value": [3.3], "low": 3.2, "high": 3.4}, LimitTypeError),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_LIMITS, ids=[repr(k) for k, _ in BAD_LIMITS])
def test_bad_limits_are_refused_naming_the_measurement(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="measurement 'rail_3v3'") as raised:
        judge("rail_3v3", units="V", **kwargs)
    assert raised.value.name == "rail_3v3"  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, Fraction(10**400)], ids=repr)
def test_a_non_finite_or_huge_value_fails_its_limits(value: Any) -> None:
    assert judge("rail_3v3", value, low=3.2, high=3.4).outcome == "failed"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
@pytest.mark.parametrize("side", ["low", "high"])
def test_a_non_finite_value_fails_even_a_one_sided_limit(value: float, side: str) -> None:
    assert judge("rail_3v3", value, **{side: 3.3}).outcome == "failed"


def test_station_measure_records_nan_as_failed_and_refuses_nan_limits(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        assert station.measure("rail_3v3", math.nan, units="V", low=3.2, high=3.4).outcome == "failed"
        with pytest.raises(LimitError, match="measurement 'ripple'"):
            station.measure("ripple", 0.001, units="V", high=math.nan)
        measured = [e for e in station.events() if e.get("name") in ("rail_3v3", "ripple")]
    assert [(m["name"], m["value"], m["outcome"]) for m in measured] == [("rail_3v3", "nan", "failed")]


# --------------------------------------------------------------------------- a stale $LITMUS_SERVER


STALE_SERVERS: dict[str, dict[str, str]] = {
    "dead-server": {"LITMUS_SERVER": "127.0.0.1:1"},
    "garbage": {"LITMUS_SERVER": "not an address"},
    "port-out-of-range": {"LITMUS_SERVER": "127.0.0.1:99999"},
    "empty-host-port": {"LITMUS_SERVER": ":"},
    "missing-server-file": {"LITMUS_SERVER": "127.0.0.1:1", "LITMUS_SERVER_FILE": "/nonexistent/server.json"},
    "server-file-is-a-directory": {"LITMUS_SERVER": "127.0.0.1:1", "LITMUS_SERVER_FILE": "/"},
}


@pytest.mark.parametrize("case", list(STALE_SERVERS))
def test_a_stale_litmus_server_does_not_break_a_mock_session(
    project: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    for name, value in STALE_SERVERS[case].items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with connect("cell-7", mock=True) as station:
            assert station.measure("vout", 3.3, low=3.2, high=3.4).passed
    assert any(issubclass(w.category, StaleServerWarning) and "LITMUS_SERVER" in str(w.message) for w in caught)
    with pytest.raises(ServerUnavailable, match=r"\$LITMUS_SERVER=.*unset LITMUS_SERVER"):
        connect("cell-7")
