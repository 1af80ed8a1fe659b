"""The HTML report as a person sees it: a real mock session's report opened in headless Chromium.

Skipped where Chromium is not installed (Debian: ``apt-get install chromium``),
except under ``CI=true``, where a missing browser fails the test: CI installs it
(.ci/run).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from chromium import chromium

from pytest_litmus import connect
from pytest_litmus.records import read_record
from pytest_litmus.report.html import render

NODE = "tests/test_board.py::test_rails"


def run_browser(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def report_of_a_mock_session(data: Path) -> str:
    with connect("cell-7", data_dir=data, mock=True) as station:
        station.test_started(NODE)
        dmm = station.instrument("dmm")
        station.measure("vout", dmm.measure_voltage(), units="V", low=0.0, high=20.0)
        station.measure("ripple", 62.0, units="mV", low=0.0, high=50.0)
        station.measure("iq", 0.7, units="mA", high=1.0)
        station.attach(
            "output ripple", {"x": [i * 1e-6 for i in range(400)], "y": [math.sin(i / 15) for i in range(400)]}
        )
        station.test_finished(NODE, "failed", 0.4, "1 measurement out of limits")
        station.stop("failed")
    return render(read_record(station.event_log))


def test_the_report_shows_its_verdict_measurements_and_plots_in_chromium(project: Path, tmp_path: Path) -> None:
    exe = chromium()
    page = tmp_path / "report.html"
    page.write_text(report_of_a_mock_session(tmp_path / "data"), encoding="utf-8")
    dom = run_browser(exe, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    verdict = re.search(r'<div class="verdict v-failed">([^<]*)</div>', dom)
    assert verdict is not None and verdict.group(1) == "FAILED"
    for name in ("vout", "ripple", "iq"):
        assert f"<td>{name}</td>" in dom
    assert dom.count("<svg") == 2  # the measurements against their limits, and the series
    assert ">output ripple<" in dom and ">ripple<" in dom  # names drawn as text in the SVGs
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", dom, re.I)

    shot = tmp_path / "report.png"
    run_browser(exe, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1100,1500", page.as_uri())
    image = pytest.importorskip("matplotlib.image").imread(shot)
    red = (abs(image[..., 0] - 207 / 255) < 0.02) & (abs(image[..., 1] - 34 / 255) < 0.02)
    assert red.sum() > 20_000  # the FAILED banner is painted (#cf222e), not only in the DOM
    if os.environ.get("LITMUS_SAVE_SCREENSHOT"):  # docs/img/report.png is made this way
        shutil.copy(shot, os.environ["LITMUS_SAVE_SCREENSHOT"])
