"""A run killed with SIGKILL mid-session keeps every event it completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from children import end

from pytest_litmus.events import read_session

BLOCKING_SUITE = """
import sys

def test_before(dmm, measure):
    measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)

def test_hangs(psu):
    psu.set_voltage(5.0)
    print("READY", flush=True)
    sys.stdin.readline()  # the parent kills us while we wait here
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_session_keeps_every_complete_event(project: Path) -> None:
    (project / "test_suite.py").write_text(BLOCKING_SUITE)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-s",
            "-p",
            "no:cacheprovider",
            "--station",
            "cell-7",
            "--mock",
            "test_suite.py",
        ],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "READY" in line:
                break
        else:
            pytest.fail("the run ended before reaching the blocking test")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        end(proc)
    assert proc.returncode == -signal.SIGKILL
    (path,) = (project / "home" / "sessions").glob("*/events.jsonl")
    log = read_session(path)
    assert not log.complete and not log.torn and log.bad_lines == 0
    types = [e["type"] for e in log.events]
    assert types == [
        "SessionStarted",
        "TestStarted",
        "InstrumentConnected",
        "InstrumentCall",
        "Measurement",
        "TestOutcome",
        "TestStarted",
        "InstrumentConnected",
        "InstrumentCall",
    ]
    assert log.events[-1]["method"] == "set_voltage" and log.events[-1]["nodeid"].endswith("::test_hangs")
