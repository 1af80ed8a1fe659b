"""The error hierarchy: builtin bases, structured fields, pickling across processes."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_litmus import (
    InstrumentError,
    LitmusError,
    LockLost,
    ResourceInUse,
    SrqTimeout,
    StationConfigError,
    StationNotFound,
    UnknownRole,
    errors,
)
from pytest_litmus.errors import (
    AccessDenied,
    AttachmentError,
    AttachmentMissing,
    AttachmentNotWritten,
    AttachmentTypeError,
    CorruptFile,
    EventsNotWritten,
    ExtraMissing,
    InvalidName,
    LimitConflict,
    LimitError,
    LimitNotListed,
    LimitTypeError,
    LockConnectionLost,
    LockModeConflict,
    LockServerRefused,
    LockServerUnavailable,
    NoSuchLock,
    NotSimulated,
    PageUnavailable,
    PromptTimeout,
    PromptUnavailable,
    ReleaseRefused,
    RemoteCallError,
    ReportUnavailable,
    RunInProgress,
    SerialRefused,
    ServerUnavailable,
    SessionNotFound,
    SyncError,
    SyncTimeout,
    UnitIndexError,
    UnitNotFound,
)

HOLDER = {
    "pid": 4242,
    "host": "bench-3",
    "user": "op",
    "session": "s-1",
    "station": "cell-7",
    "role": "dmm",
    "nodeid": "tests/test_power.py::test_rail",
    "since": "2026-11-21T06:00:00+00:00",
}

EXAMPLES = [
    StationNotFound("cell-9", [Path("/p/stations")], ["cell-7"]),
    StationConfigError(
        "/p/stations/cell-7.yaml", "instruments.dmm.lock", "one of exclusive, shared, none", "sometimes"
    ),
    UnknownRole("scope", "cell-7", ["dmm", "psu"], "/p/stations/cell-7.yaml"),
    ResourceInUse("GPIB0::17::INSTR", HOLDER, waited=1.5),
    LockLost("GPIB0::17::INSTR", "psu", HOLDER),
    InstrumentError("GPIB0::17::INSTR", [(-113, "Undefined header")], role="psu"),
    SrqTimeout("dmm", "TCPIP0::1.2.3.4::inst0::INSTR", 2.0, 0x10, "read_stb"),
    NoSuchLock("GPIB0::17::INSTR", "/p/locks"),
    LockModeConflict("GPIB0::17::INSTR", "shared", "exclusive"),
    ServerUnavailable("127.0.0.1:4000", "refused the connection: wrong key"),
    RemoteCallError("dmm", "query", "socket.error", "cannot be sent"),
    SyncError("power-up", "gw1 died", generation=2, arrived=["gw0"]),
    SyncTimeout("power-up", "timed out after 5 s"),
    SessionNotFound("ab", Path("/p"), ["ab12", "ab34"]),
    InvalidName("lock key or resource", "../x", "a path"),
    AccessDenied(
        "/srv/litmus/locks",
        "create a lock file in",
        owner="ana",
        group="litmus",
        mode="2755",
        user="ci",
        hint="make it group-writable",
    ),
    ReleaseRefused("GPIB0::17::INSTR", HOLDER, "op", "ci"),
    LimitError("vout", "low limit must be finite (None leaves that side open)", float("inf")),
    LimitTypeError("vout", "low limit must be a real number or None", "3.2"),
    LimitNotListed("vout", "/p/limits/board-a.yaml"),
    LimitConflict("vout", "/p/limits/board-a.yaml", "inline high 3.5 given, the file says [3.2, 3.4]"),
    AttachmentError("../../etc/passwd", "the name must not be empty", ""),
    AttachmentTypeError("trace", "cannot attach object", "<object>"),
    AttachmentMissing("trace", "no such file", "/tmp/nope.csv"),
    AttachmentNotWritten("trace", "/data/sessions/s/attachments/trace-1.json", "No space left on device"),
    ReportUnavailable("matplotlib"),
    CorruptFile("/p/sessions/s-1/events.jsonl", "not JSON (Expecting value)", line=7, bad_lines=2),
    EventsNotWritten("s-1", "/p/sessions/s-1/events.jsonl", 550, [(1001, 1550)], "[Errno 28] No space left on device"),
    UnitIndexError("/p/units/sn-SN1.jsonl", "SN1", "[Errno 30] Read-only file system"),
    UnitNotFound("SN9", session="s-1", units=["SN1", None]),
    NotSimulated("<RemoteInstrument dmm>", "its instrument is held by another process"),
    ExtraMissing("fleet", "psycopg", "PostgreSQL instrument locks"),
    LockServerUnavailable("postgresql://lab:***@db/litmus", "connection refused"),
    LockConnectionLost("GPIB0::17::INSTR", "psu", "postgresql://lab:***@db/litmus", "server closed the connection"),
    LockServerRefused("GPIB0::17::INSTR", HOLDER, "station_a", "station_b", "postgresql://lab:***@db/litmus"),
    PageUnavailable("starlette"),
    PromptUnavailable("Is the LED green?", "cell-7"),
    PromptTimeout("Connect the probe to TP3", 30.0, "page"),
    SerialRefused("PB-1;rm -rf /", "a serial number matching dut_pattern 'PB-[0-9]+'"),
    RunInProgress("cell-7", "PB-1042", 4242),
]


@pytest.mark.parametrize(
    ("err", "builtin"),
    list(
        zip(
            EXAMPLES,
            [
                LookupError,
                ValueError,
                LookupError,
                RuntimeError,
                RuntimeError,
                RuntimeError,
                TimeoutError,
                LookupError,
                RuntimeError,
                ConnectionError,
                RuntimeError,
                RuntimeError,
                TimeoutError,
                LookupError,
                ValueError,
                PermissionError,
                PermissionError,
                ValueError,
                TypeError,
                LookupError,
                ValueError,
                ValueError,
                TypeError,
                FileNotFoundError,
                OSError,
                ImportError,
                ValueError,
                OSError,
                OSError,
                LookupError,
                TypeError,
                ImportError,
                ConnectionError,
                RuntimeError,
                PermissionError,
                ImportError,
                RuntimeError,
                TimeoutError,
                ValueError,
                RuntimeError,
            ],
            strict=True,
        )
    ),
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_each_error_is_a_litmus_error_and_its_builtin(err: LitmusError, builtin: type[Exception]) -> None:
    assert isinstance(err, LitmusError) and isinstance(err, builtin)


@pytest.mark.parametrize("err", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_message_and_fields(err: LitmusError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err) and copy.__dict__ == err.__dict__


def test_every_error_class_of_the_hierarchy_has_an_example() -> None:
    assert {type(e).__name__ for e in EXAMPLES} | {"LitmusError"} == set(errors.__all__)


def test_resource_in_use_names_the_holder() -> None:
    err = ResourceInUse("GPIB0::17::INSTR", HOLDER)
    assert err.holder["pid"] == 4242
    for part in ("pid 4242", "op@bench-3", "session s-1", "cell-7/dmm", "tests/test_power.py::test_rail", "since"):
        assert part in str(err)


def test_errors_cross_a_process_boundary(tmp_path: Path) -> None:
    blob = tmp_path / "err.pickle"
    code = (
        "import pickle, sys; from pytest_litmus import ResourceInUse;"
        f"pickle.dump(ResourceInUse('GPIB0::17::INSTR', {HOLDER!r}, waited=0.5), open(sys.argv[1], 'wb'))"
    )
    subprocess.run([sys.executable, "-c", code, str(blob)], check=True)
    err = pickle.loads(blob.read_bytes())
    assert isinstance(err, ResourceInUse) and err.holder == HOLDER and err.waited == 0.5
