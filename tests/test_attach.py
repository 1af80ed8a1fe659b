"""Attachments: stored under the session directory, referenced by an event, refused when they must be."""

from __future__ import annotations

import array
import errno
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import connect
from pytest_litmus.attachments import ATTACHMENTS_DIR, read_series, resolve, store
from pytest_litmus.errors import AttachmentError, AttachmentMissing, AttachmentNotWritten, AttachmentTypeError
from pytest_litmus.events import read_events, session_dir


def attachments(station: Any) -> list[dict[str, Any]]:
    return station.events("Attachment")


def stored_file(station: Any, event: dict[str, Any]) -> Path:
    path = resolve(session_dir(station.data_dir, station.session_id), event["path"])
    assert path is not None, event
    return path


def test_bytes_text_path_and_series_are_stored_and_recorded(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "scope.csv"
    source.write_bytes(b"t,v\n0,1\n")
    with connect("cell-7", data_dir=tmp_path / "data", mock=True) as station:
        station.test_started("t.py::test_x")
        raw = station.attach("blob", b"\x00\x01\xff")
        text = station.attach("notes.txt", "tension ✓")
        copied = station.attach("trace", source)
        series = station.attach("ripple", {"x": [0, 1e-6, 2e-6], "y": [0.1, -0.2, 0.05]})
        station.test_finished("t.py::test_x", "passed", 0.1)
    assert stored_file(station, raw).read_bytes() == b"\x00\x01\xff"
    assert stored_file(station, text).read_text("utf-8") == "tension ✓"
    assert stored_file(station, copied).read_bytes() == b"t,v\n0,1\n"
    assert json.loads(stored_file(station, series).read_bytes()) == {"x": [0, 1e-6, 2e-6], "y": [0.1, -0.2, 0.05]}
    events = [e for e in read_events(station.event_log) if e["type"] == "Attachment"]
    assert [e["name"] for e in events] == ["blob", "notes.txt", "trace", "ripple"]
    assert [e["mime"] for e in events] == ["application/octet-stream", "text/plain", "text/csv", "application/json"]
    assert [e["series"] for e in events] == [False, False, False, True]
    for event in events:
        data = stored_file(station, event).read_bytes()
        assert event["size"] == len(data) and event["sha256"] == hashlib.sha256(data).hexdigest()
        assert event["nodeid"] == "t.py::test_x" and "dut" in event and "attempt" in event
        assert event["path"].startswith(f"{ATTACHMENTS_DIR}/")


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 300, "..", ".", "", "  ", "\n", "con", "ü/ñ\\é", ".hidden"],
)
def test_any_name_gives_a_safe_file_inside_the_attachments_directory(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "s"
    if not name.strip():
        with pytest.raises(AttachmentError, match="must not be empty"):
            store(folder, name, b"x")
        return
    stored = store(folder, name, b"payload")
    (only,) = (folder / ATTACHMENTS_DIR).iterdir()
    assert stored.path == f"{ATTACHMENTS_DIR}/{only.name}" and stored.name == name
    assert len(only.name) <= 90 and "\x00" not in only.name and not only.name.startswith(".")
    assert only.read_bytes() == b"payload"
    assert list(tmp_path.iterdir()) == [folder]


def test_names_that_collide_keep_every_attachment(tmp_path: Path) -> None:
    stored = [store(tmp_path, name, f"{i}") for i, name in enumerate(["a b", "a_b", "a/b", "a b", "a?b"])]
    assert len({s.path for s in stored}) == 5
    assert [(tmp_path / s.path).read_text() for s in stored] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("name", "data", "mime", "expected"),
    [
        ("scope.png", b"\x89PNG", None, "image/png"),
        ("log.txt", b"x", None, "text/plain"),
        ("report.json", "{}", None, "application/json"),
        ("dump", b"x", "application/x-litmus", "application/x-litmus"),
        ("log", "x", "text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("noext", b"x", None, "application/octet-stream"),
    ],
)
def test_the_mime_type_is_guessed_from_the_name_or_taken(
    tmp_path: Path, name: str, data: Any, mime: str | None, expected: str
) -> None:
    assert store(tmp_path, name, data, mime).mime == expected


def test_series_from_arrays_and_tuples(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    cases = [numpy.linspace(0, 1, 5), array.array("d", [1.5, 2.5]), (1, 2, 3), [], {"y": numpy.arange(3)}]
    for data in cases:
        stored = store(tmp_path, "w", data)
        assert stored.series and stored.mime == "application/json"
        x, y = read_series(tmp_path / stored.path) or (None, None)
        assert x is None and y == list(data["y"] if isinstance(data, dict) else data)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (object(), AttachmentTypeError, "cannot attach object"),
        (None, AttachmentTypeError, "cannot attach NoneType"),
        (3.3, AttachmentTypeError, "cannot attach float"),
        ({1, 2}, AttachmentTypeError, "cannot attach set"),
        ([1, "2"], AttachmentTypeError, r"the value\[1\] is not a real number"),
        ([True, False], AttachmentTypeError, "not a real number"),
        ([1.0, float("nan")], AttachmentError, r"\[1\] is not finite"),
        ([float("inf")], AttachmentError, "not finite"),
        ({"x": [1, 2], "y": [1]}, AttachmentError, "x has 2 values and y 1"),
        ({"x": [1]}, AttachmentError, "has 'y'"),
        ({"y": [1], "z": [2]}, AttachmentError, "nothing else"),
        ({"y": "12"}, AttachmentTypeError, "series y must be a list"),
        ([[1, 2]], AttachmentTypeError, "not a real number"),
    ],
)
def test_values_that_cannot_be_attached_are_refused_and_nothing_is_written(
    tmp_path: Path, data: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        store(tmp_path, "w", data)
    assert not tmp_path.joinpath(ATTACHMENTS_DIR).exists()


def test_paths_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttachmentMissing, match="no such file") as missing:
        store(tmp_path / "s", "w", tmp_path / "nope.bin")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, ValueError)
    with pytest.raises(AttachmentError, match="is a directory"):
        store(tmp_path / "s", "w", tmp_path)
    os.mkfifo(tmp_path / "fifo")  # reading it would block forever
    with pytest.raises(AttachmentError, match="not a regular file"):
        store(tmp_path / "s", "w", tmp_path / "fifo")
    with pytest.raises(AttachmentError, match="not a regular file"):
        store(tmp_path / "s", "w", Path("/dev/zero"))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", [None, 3, b"bytes"])
def test_a_name_that_is_not_a_string_is_refused(tmp_path: Path, name: Any) -> None:
    with pytest.raises(AttachmentTypeError, match="the name must be a string"):
        store(tmp_path, name, b"x")


@pytest.mark.parametrize("mime", ["", "png", "text/html\n<script>", "a/b c", "x" * 300 + "/y", 3])
def test_a_bad_mime_type_is_refused(tmp_path: Path, mime: Any) -> None:
    with pytest.raises(AttachmentError, match="mime must be a media type"):
        store(tmp_path, "w", b"x", mime)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_disk_that_refuses_the_file_raises_and_records_nothing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    with connect("cell-7", data_dir=tmp_path / "data", mock=True) as station:
        real_write = os.write

        def refuse(fd: int, data: Any) -> int:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "data")) and b"payload" in bytes(data):
                raise OSError(code, os.strerror(code))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", refuse)
        with pytest.raises(AttachmentNotWritten, match=os.strerror(code)) as caught:
            station.attach("scope.bin", b"payload")
        monkeypatch.setattr(os, "write", real_write)
    assert isinstance(caught.value, OSError) and caught.value.name == "scope.bin"
    assert attachments(station) == []
    folder = session_dir(station.data_dir, station.session_id) / ATTACHMENTS_DIR
    assert list(folder.iterdir()) == []  # no temporary file left behind
    assert pickle.loads(pickle.dumps(caught.value)).reason == caught.value.reason


def test_resolve_refuses_paths_outside_the_attachments_directory(tmp_path: Path) -> None:
    stored = store(tmp_path, "ok", b"x")
    (tmp_path / "events.jsonl").write_text("{}")
    assert resolve(tmp_path, stored.path) == (tmp_path / stored.path).resolve()
    for bad in ["../x", "/etc/passwd", "events.jsonl", "attachments/../events.jsonl", "attachments", "a\x00", 3, None]:
        assert resolve(tmp_path, bad) is None, bad


ATTACHING = """
import pytest

def test_scope(dmm, attach):
    attach("ripple", [0.1, 0.2, 0.15])
    attach("log.txt", "hello")

@pytest.mark.parametrize("n", range(3))
def test_more(dmm, attach, n):
    attach("n", str(n))
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_the_attach_fixture_attributes_to_the_running_test_also_on_xdist_workers(
    station_project: pytest.Pytester, workers: list[str]
) -> None:
    station_project.makepyfile(test_attaching=ATTACHING)
    result = station_project.runpytest("--station", "cell-7", "--mock", *workers)
    result.assert_outcomes(passed=4)
    (log,) = (station_project.path / "home" / "sessions").glob("*/events.jsonl")
    events = [e for e in read_events(log) if e["type"] == "Attachment"]
    assert sorted((e["nodeid"].split("::")[1], e["name"]) for e in events) == [
        ("test_more[0]", "n"),
        ("test_more[1]", "n"),
        ("test_more[2]", "n"),
        ("test_scope", "log.txt"),
        ("test_scope", "ripple"),
    ]
    for event in events:
        path = resolve(log.parent, event["path"])
        assert path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == event["sha256"]
        if workers:
            assert event["caller"]["worker"] in ("gw0", "gw1")
    assert {e["name"]: e["series"] for e in events}["ripple"] is True
