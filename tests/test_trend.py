"""``litmus trend``: values across sessions, Cpk and Ppk checked against numbers computed by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import connect
from pytest_litmus.cli import main
from pytest_litmus.report.stats import D2, capability
from pytest_litmus.report.trend import collect

REPO = Path(__file__).resolve().parent.parent

# By hand, for 1, 2, 4, 3, 5: mean 3; squares of deviations 4+1+1+0+4 = 10, s = sqrt(10/4) = sqrt(2.5);
# moving ranges 1, 2, 1, 2: MR-bar = 6/4 = 1.5, sigma within = 1.5/1.128.
HAND = [1.0, 2.0, 4.0, 3.0, 5.0]


def test_cpk_and_ppk_match_the_hand_computed_numbers() -> None:
    c = capability(HAND, 0.0, 9.0)
    assert c.n == 5 and c.mean == 3.0
    assert c.sigma_overall == pytest.approx(math.sqrt(2.5))
    assert c.mr_bar == 1.5 and c.sigma_within == pytest.approx(1.5 / 1.128) and D2 == 1.128
    assert c.cpk == pytest.approx(0.752)  # min(9-3, 3-0) / (3 * 1.5/1.128) = 3 / 3.98936...
    assert c.ppk == pytest.approx(0.6324555320)  # 3 / (3 * sqrt(2.5))
    high_only = capability(HAND, None, 9.0)  # Cpu: (9 - 3) / (3 sigma)
    assert high_only.cpk == pytest.approx(1.504) and high_only.ppk == pytest.approx(1.2649110640)
    low_only = capability(HAND, 2.0, None)  # Cpl: (3 - 2) / (3 sigma)
    assert low_only.cpk == pytest.approx(0.752 / 3) and low_only.out_of_limits == 1


def test_cpk_depends_on_the_order_of_values_and_ppk_does_not() -> None:
    shuffled = capability([1.0, 5.0, 2.0, 4.0, 3.0], 0.0, 9.0)  # moving ranges 4, 3, 2, 1: MR-bar 2.5
    assert shuffled.mr_bar == 2.5 and shuffled.cpk == pytest.approx(3 / (3 * 2.5 / 1.128))
    assert shuffled.ppk == pytest.approx(capability(HAND, 0.0, 9.0).ppk)


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [([], 0.0, 1.0), ([3.0], 0.0, 9.0), ([2.0, 2.0, 2.0], 0.0, 9.0), (HAND, None, None)],
    ids=["none", "one", "no-spread", "no-limits"],
)
def test_indices_are_none_where_they_mean_nothing(values: list[float], low: float | None, high: float | None) -> None:
    c = capability(values, low, high)
    assert c.cpk is None and c.ppk is None


def _session(data: Path, station_values: list[Any], *, rerun_first: Any = None) -> None:
    with connect("cell-7", data_dir=data, mock=True) as station:
        if rerun_first is not None:  # a first attempt that a rerun superseded
            station.test_started("t.py::test_v")
            station.measure("vout", rerun_first, low=0, high=9)
            station.test_finished("t.py::test_v", "rerun", 0.1)
        station.test_started("t.py::test_v")
        for value in station_values:
            if isinstance(value, str):
                station.emit("Measurement", name="vout", value=value, outcome="passed", nodeid=station.nodeid)
            else:
                station.measure("vout", value, units="V", low=0, high=9)
        station.measure("other", 100.0)
        station.test_finished("t.py::test_v", "passed", 0.1)


def test_collect_takes_counted_values_oldest_first_across_sessions(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _session(data, HAND[:2], rerun_first=-50.0)
    _session(data, [*HAND[2:], "OK"])
    (trend,) = collect(data, "vout").values()
    assert [p.value for p in trend.points] == HAND  # the superseded -50 is not counted
    assert trend.not_numeric == 1 and trend.station == "cell-7" and trend.limits == (0.0, 9.0)
    assert trend.capability().cpk == pytest.approx(0.752)
    assert collect(data, "vout", station="elsewhere") == {}
    assert (
        collect(data, "vout", since=trend.points[-1].ts)
        and len(collect(data, "vout", since=trend.points[-1].ts)["cell-7"].points) == 1
    )


def test_the_cli_prints_the_table_and_writes_a_page(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _session(data, HAND)
    assert main(["--data-dir", str(data), "trend", "vout"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[1:3]
    assert header.split()[:2] == ["station", "n"] and row.split()[:3] == ["cell-7", "5", "3"]
    assert row.split()[-3:] == ["0.752", "0.632", "0"]
    assert "MR-bar / 1.128" in out and "sample standard deviation" in out
    page = tmp_path / "trend.html"
    assert main(["--data-dir", str(data), "trend", "vout", "-o", str(page)]) == 0
    text = page.read_text()
    assert text.count("<svg") == 2 and "0.752" in text and "http://" not in text.split("</style>")[0]
    assert main(["--data-dir", str(data), "trend", "nothing"]) == 1
    assert "no values of measurement 'nothing'" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["yesterday", "7x", "", "-1d", "2025-13-01"])
def test_a_bad_since_is_a_usage_error(tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path), "trend", "vout", f"--since={bad}"])
    assert exited.value.code == 2 and "expected a date" in capsys.readouterr().err


def test_damaged_files_in_the_data_dir_are_skipped(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _session(data, HAND)
    junk = data / "sessions" / "junk"
    junk.mkdir()
    (junk / "events.jsonl").write_bytes(b'\xff\x00"vout"\n{"type": "Measurement", "name": "vout", "value": 1e999}\n')
    (trend,) = collect(data, "vout").values()
    assert [p.value for p in trend.points] == HAND


BLOCK_MATPLOTLIB = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoMatplotlib(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "matplotlib":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoMatplotlib())
    from pytest_litmus.cli import main
    """
)


def test_without_matplotlib_the_text_works_and_the_page_says_what_to_install(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _session(data, HAND)
    script = BLOCK_MATPLOTLIB + textwrap.dedent(
        f"""
        text = main(["--data-dir", {str(data)!r}, "trend", "vout"])
        page = main(["--data-dir", {str(data)!r}, "trend", "vout", "-o", {str(tmp_path / "t.html")!r}])
        print(json.dumps([text, page]))
        """
    ).replace("print(", "import json; print(")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert json.loads(proc.stdout.splitlines()[-1]) == [0, 1], proc.stderr
    assert "cell-7" in proc.stdout and "0.752" in proc.stdout
    assert "needs pytest-litmus[report]" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "t.html").exists()


def test_neither_the_plugin_nor_the_cli_imports_matplotlib_at_start() -> None:
    script = (
        "import sys, pytest_litmus.plugin\n"
        "from pytest_litmus.cli import build_parser\n"
        "build_parser()\n"
        "assert not [m for m in sys.modules if m.startswith(('matplotlib', 'numpy'))], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=REPO)
