"""Helpers for the instrument server, follow, sync and session CLI tests (run as subprocesses too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STATION_FILE = REPO / "stations" / "cell-7.yaml"
HERE = Path(__file__).resolve().parent


def start_session(data_dir: Path, station_file: Path = STATION_FILE) -> Any:
    """A started mock session of ``station_file`` (cell-7) in this process."""
    from pytest_litmus.config import load_station_file
    from pytest_litmus.connection import StationConnection

    return StationConnection(load_station_file(station_file), data_dir=data_dir, mock=True).start()


#: The processes :func:`spawn` started in the running test; ended after it (tests/conftest.py).
SPAWNED: list[subprocess.Popen[str]] = []


def spawn(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Run ``tests/serverhelpers/<script>.py`` with line-buffered text pipes; killed, if still
    running, and its pipes closed after the test."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(HERE / f"{script}.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    SPAWNED.append(proc)
    return proc


def end_spawned() -> None:
    """End what :func:`spawn` started (kill, reap, close the pipes)."""
    from children import end

    while SPAWNED:
        end(SPAWNED.pop())


def read_json_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The next stdout line of ``proc`` as JSON (fails with its stderr if it ended instead)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise AssertionError(f"helper exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    value: dict[str, Any] = json.loads(line)
    return value
