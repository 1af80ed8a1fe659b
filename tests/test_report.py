"""The HTML report of a session record: what it shows, and what it refuses to trust."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import connect
from pytest_litmus.records import read_record
from pytest_litmus.report.html import render
from pytest_litmus.report.plots import MAX_POINTS, _reduce, series_svg

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
NODE = "tests/test_board.py::test_rails"


def _limits(low: float | None, high: float | None, **more: Any) -> dict[str, Any]:
    return {"low": low, "high": high, "low_inclusive": True, "high_inclusive": True, "source": "inline", **more}


def make_session(data: Path, *, rerun: bool = True) -> Any:
    with connect("cell-7", data_dir=data, mock=True) as station:
        if rerun:
            station.test_started(NODE)
            station.measure("vout", 9.9, units="V", low=3.2, high=3.4)
            station.attach("first try", b"old")
            station.test_finished(NODE, "rerun", 0.2, "vout out of limits")
        station.test_started(NODE)
        station.measure("vout", 3.31, units="V", low=3.2, high=3.4)
        station.emit(  # a marginal value, as the limits file's band judges it
            "Measurement",
            name="iq",
            value=0.95,
            units="mA",
            low=None,
            high=1.0,
            outcome="passed",
            marginal=True,
            limits=_limits(None, 1.0, marginal_high=0.9),
            nodeid=station.nodeid,
        )
        station.measure("ripple <script>alert(1)</script>", 55, units="mV", low=0, high=50)
        station.measure("count", 3)
        station.emit("Measurement", name="status", value="OK", outcome="passed", nodeid=station.nodeid)
        station.attach("waveform", {"x": [0, 1, 2, 3], "y": [0.0, 1.0, 0.5, 0.25]})
        station.attach("photo.png", PNG)
        station.attach("log.txt", "hello")
        station.test_finished(NODE, "failed", 0.5, "1 measurement out of limits")
    return station


@pytest.fixture
def page(project: Path, tmp_path: Path) -> str:
    station = make_session(tmp_path / "data")
    return render(read_record(station.event_log))


def test_the_page_shows_the_unit_verdict_tests_and_measurements(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'class="verdict v-failed">FAILED<' in page
    assert "cell-7" in page and NODE in page
    for name in ("vout", "iq", "count", "status"):
        assert f"<td>{name}</td>" in page
    assert "<td class=num>3.31 V</td>" in page and "<td class=num>[3.2, 3.4]</td>" in page
    assert "<td class=num>&lt;= 1, marginal &gt;= 0.9</td>" in page and "marginal</span>" in page
    assert "1 measurement out of limits: ripple &lt;script&gt;" in page


def test_measurements_with_numeric_limits_are_drawn_with_their_names(page: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    bars = next(s for s in svgs if ">vout<" in s)
    assert ">iq<" in bars and "ripple &lt;script&gt;" in bars and ">count<" not in bars  # no limits: not drawn
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several SVGs inline, ids still unique


def test_superseded_attempts_are_folded_and_marked(page: str) -> None:
    folded = re.search(r'<details class="superseded">.*?</details>', page, re.S)
    assert folded is not None
    assert "attempt 1" in folded.group() and "superseded, not counted" in folded.group()
    assert "9.9 V" in folded.group() and "first try" in folded.group()
    assert "9.9 V" not in page.replace(folded.group(), "")


def test_attachments_series_plotted_images_inlined_others_listed(page: str) -> None:
    assert ">waveform<" in page  # the series plot's title, as SVG text
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page
    assert "<td>log.txt</td><td>text/plain</td><td class=num>5</td>" in page


def test_no_script_no_network(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page


def test_attachment_files_that_moved_changed_or_point_outside_are_not_used(project: Path, tmp_path: Path) -> None:
    station = make_session(tmp_path / "data", rerun=False)
    log = station.event_log
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + b"secret")
    text = log.read_text()
    photo = re.search(r'"path":"(attachments/photo-[0-9a-f]+\.png)"', text)
    assert photo is not None
    (log.parent / photo.group(1)).write_bytes(PNG + b"edited")  # changed after it was recorded
    text = text.replace('"name":"log.txt"', '"name":"escape"').replace(
        re.search(r'"path":"(attachments/log-[0-9a-f]+\.txt)"', text).group(1),  # type: ignore[union-attr]
        "../../../secret.png",
    )
    log.write_text(text)
    page = render(read_record(log))
    assert "changed since it was recorded" in page and "missing" in page
    assert "c2VjcmV0" not in page and "ZWRpdGVk" not in page  # neither file's bytes inlined
    assert "<td>escape</td>" in page


def test_a_long_series_is_reduced_to_an_envelope_that_keeps_its_extremes() -> None:
    y = [0.0] * 200_000
    y[123_457] = 7.0
    svg = series_svg("long", None, y)
    assert len(svg) < 400_000 and svg.count(" L ") < MAX_POINTS + 10
    xs, ys = _reduce(None, y)
    assert len(ys) <= MAX_POINTS and max(ys) == 7.0 and 123_457 in list(xs)


def test_an_old_session_without_dut_or_attempt_fields_renders(project: Path, tmp_path: Path) -> None:
    with connect("cell-7", data_dir=tmp_path / "data", mock=True) as station:
        station.measure("loose", 1.0, low=0, high=2)  # outside any test
    page = render(read_record(station.event_log))
    assert "Unit (no serial)" in page and "outside any test" in page and "PASSED" in page


def test_without_matplotlib_render_says_what_to_install(project: Path, tmp_path: Path) -> None:
    station = make_session(tmp_path / "data", rerun=False)
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class NoMatplotlib(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "matplotlib":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NoMatplotlib())
        from pytest_litmus.errors import ReportUnavailable
        from pytest_litmus.records import read_record
        from pytest_litmus.report.html import render
        try:
            render(read_record({str(station.event_log)!r}))
        except ImportError as exc:
            assert isinstance(exc, ReportUnavailable), exc
            print(exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "needs pytest-litmus[report]" in proc.stdout and "pip install" in proc.stdout
