"""Shipping after a pytest session, ``litmus ship``, and ``litmus fleet migrate|yield|unit|trend`` on a generated fleet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pgserver import free_port
from recordhelpers import T0, Events, m

from pytest_litmus.cli import main
from pytest_litmus.fleet import connect, migrate

psycopg = pytest.importorskip("psycopg")

SUITE = """
def test_rail(dmm, measure):
    measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def migrated(url: str) -> str:
    with connect(url) as conn:
        migrate(conn, url)
    return url


# --------------------------------------------------------------------------- after a pytest session


def test_a_session_is_shipped_when_it_ends(
    station_project: pytest.Pytester, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITMUS_FLEET", migrated(postgres_url))
    station_project.makepyfile(test_rail=SUITE)
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "fleet store" not in result.stdout.str()
    with connect(postgres_url) as conn:
        assert conn.execute("SELECT station, outcome, mock FROM litmus.sessions").fetchall() == [
            ("cell-7", "passed", True)
        ]
        assert conn.execute("SELECT name FROM litmus.measurements").fetchall() == [("rail_3v3",)]


def test_an_unreachable_store_never_fails_the_run_and_says_what_is_pending(
    station_project: pytest.Pytester,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = f"postgresql://op:s3cret@127.0.0.1:{free_port()}/lab"
    monkeypatch.setenv("LITMUS_FLEET", dead)
    station_project.makepyfile(test_rail=SUITE)
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    (line,) = [x for x in text.splitlines() if "fleet store" in x]
    assert line.startswith("litmus: fleet store postgresql://op:***@127.0.0.1:")
    assert "1 session pending, litmus ship sends them" in line and "s3cret" not in text + result.stderr.str()
    # litmus ship: what is pending, then shipping it once the store is there
    home = str(station_project.path / "home")
    code, out, _ = run(capsys, "--data-dir", home, "ship", "--pending")
    assert code == 1 and "1 session pending for postgresql://op:***@" in out and "never shipped" in out
    code, out, err = run(capsys, "--data-dir", home, "ship")
    assert code == 1 and "s3cret" not in out + err and "1 session still pending" in out
    code, out, _ = run(capsys, "--data-dir", home, "ship", "--fleet", migrated(postgres_url))
    assert code == 0 and out.startswith("shipped 1 session to postgresql://litmus@127.0.0.1:")
    code, out, _ = run(capsys, "--data-dir", home, "ship", "--fleet", postgres_url, "--dry-run")
    assert code == 0 and "0 sessions pending" in out


def test_an_unmigrated_store_is_named_with_the_command_to_run(
    station_project: pytest.Pytester, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITMUS_FLEET", postgres_url)
    station_project.makepyfile(test_rail=SUITE)
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["litmus: fleet store * run `litmus fleet migrate`*; 1 session pending, litmus ship sends them"]
    )


def test_no_store_set_ships_nothing_and_fleet_commands_say_how_to_set_one(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LITMUS_FLEET", raising=False)
    station_project.makepyfile(test_rail=SUITE)
    station_project.runpytest_subprocess("--station", "cell-7", "--mock", "-p", "no:cacheprovider").assert_outcomes(
        passed=1
    )
    assert not (station_project.path / "home" / "fleet").exists()
    code, _, err = run(capsys, "fleet", "yield")
    assert code == 1 and "no fleet store: set `fleet: postgresql://...` in litmus.yaml" in err


# --------------------------------------------------------------------------- queries on a generated fleet


def fleet(data_dir: Path) -> None:
    """cell-1: SN1 passes; SN2 fails (attempt 1). cell-2: SN2 passes (attempt 2); SN3 fails; SN4 only skipped."""
    day = 86400.0

    def one(sid: str, station: str, dut: str, attempt: int, ok: bool, t0: float, vout: float) -> None:
        e = Events(data_dir, sid, t0=t0).started(dut, station=station, mock=False, unit_attempt=attempt)
        outcome = "passed" if ok else "failed"
        e.test("t.py::test_rail", outcome, m("vout", vout, outcome, low=3.2, high=3.4), dut=dut)
        e.ended(outcome).write()

    one("a1", "cell-1", "SN1", 1, True, T0, 3.30)
    one("a2", "cell-1", "SN2", 1, False, T0 + 100, 3.45)
    one("b1", "cell-2", "SN2", 2, True, T0 + day, 3.31)
    one("b2", "cell-2", "SN3", 1, False, T0 + day + 100, 3.50)
    one("b3", "cell-2", "SN5", 1, True, T0 + day + 200, 3.28)
    e = Events(data_dir, "b4", t0=T0 + 2 * day).started("SN4", station="cell-2", mock=False, unit_attempt=1)
    e.add("TestStarted", nodeid="t.py::test_x", dut="SN4", attempt=1)
    e.add("TestOutcome", nodeid="t.py::test_x", outcome="skipped", dut="SN4", attempt=1)
    e.ended("passed").write()
    mock = Events(data_dir, "m1", t0=T0).started("SN9", station="cell-1", mock=True)
    mock.test("t.py::test_rail", "failed", m("vout", 9.0, "failed"), dut="SN9").ended("failed").write()


@pytest.fixture
def shipped(postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    fleet(tmp_path)
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "fleet", "migrate", "--fleet", postgres_url)
    assert code == 0 and "schema version 1 (was 0)" in out
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "fleet", "migrate", "--fleet", postgres_url)
    assert "schema version 1 (already)" in out
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "ship", "--fleet", postgres_url)
    assert code == 0 and "shipped 7 sessions" in out
    return postgres_url, tmp_path


def table(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def test_fleet_yield_per_station_with_the_total(shipped: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = shipped
    code, out, _ = run(capsys, "fleet", "yield", "--fleet", url)
    assert code == 0
    assert table(out) == [
        ["STATION", "TESTED", "PASSED", "FAILED", "OTHER", "UNITS", "YIELD", "FIRST-PASS"],
        ["cell-1", "2", "1", "1", "0", "2", "50.0%", "50.0%"],
        ["cell-2", "3", "2", "1", "0", "3", "66.7%", "50.0%"],
        ["(total)", "5", "3", "2", "0", "4", "60.0%", "50.0%"],
    ]
    code, out, _ = run(capsys, "fleet", "yield", "--fleet", url, "--station", "cell-2", "--since", "2026-01-02")
    assert table(out)[1:] == [["cell-2", "3", "2", "1", "0", "3", "66.7%", "50.0%"]]
    code, out, _ = run(capsys, "fleet", "yield", "--fleet", url, "--mock", "--station", "cell-1")
    assert table(out)[1:] == [["cell-1", "3", "1", "2", "0", "3", "33.3%", "50.0%"]]
    code, out, _ = run(capsys, "fleet", "yield", "--fleet", url, "--station", "nowhere")
    assert code == 1 and "no units tested" in out


def test_the_daily_yield_view(shipped: tuple[str, Path]) -> None:
    url, _ = shipped
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT station, tested, passed, failed, yield::float FROM litmus.daily_yield ORDER BY day"
        ).fetchall()
    assert rows == [("cell-1", 2, 1, 1, 0.5), ("cell-2", 3, 2, 1, 0.6667)]


def test_fleet_unit_lists_every_attempt_on_any_station(
    shipped: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = shipped
    code, out, _ = run(capsys, "fleet", "unit", "SN2", "--fleet", url)
    rows = table(out)
    assert code == 0 and rows[0][:6] == ["WHEN", "STATION", "HOST", "SESSION", "ATTEMPT", "VERDICT"]
    assert [(r[1], r[3], r[4], r[5]) for r in rows[1:]] == [
        ("cell-1", "a2", "1", "failed"),
        ("cell-2", "b1", "2", "passed"),
    ]
    assert rows[1][6] == "vout=3.45 V [3.2, 3.4]"
    code, _, err = run(capsys, "fleet", "unit", "SN404", "--fleet", url)
    assert code == 1 and "tested unit 'SN404'" in err


def test_fleet_trend_gives_the_local_trend_across_stations(
    shipped: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, data_dir = shipped
    (data_dir / "sessions" / "m1" / "events.jsonl").unlink()  # the local trend counts mock sessions, the fleet's not
    code, local, _ = run(capsys, "--data-dir", str(data_dir), "trend", "vout")
    assert code == 0
    code, remote, _ = run(capsys, "fleet", "trend", "vout", "--fleet", url)
    assert code == 0 and remote == local and "cell-1" in remote and "cell-2" in remote
    code, remote, _ = run(capsys, "fleet", "trend", "vout", "--fleet", url, "--station", "cell-2")
    _, local, _ = run(capsys, "--data-dir", str(data_dir), "trend", "vout", "--station", "cell-2")
    assert remote == local
    code, out, _ = run(capsys, "fleet", "trend", "nothing", "--fleet", url)
    assert code == 1 and "no values of measurement 'nothing'" in out


def test_fleet_trend_writes_the_same_page_as_the_local_trend(
    shipped: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    url, data_dir = shipped
    (data_dir / "sessions" / "m1" / "events.jsonl").unlink()
    run(capsys, "--data-dir", str(data_dir), "trend", "vout", "-o", str(tmp_path / "local.html"))
    code, out, _ = run(capsys, "fleet", "trend", "vout", "--fleet", url, "-o", str(tmp_path / "fleet.html"))
    assert code == 0 and "wrote" in out
    strip = re.compile(r'id="[^"]*"|url\(#[^)]*\)|xlink:href="#[^"]*"|href="#[^"]*"')  # matplotlib's random ids
    local = strip.sub("", (tmp_path / "local.html").read_text())
    remote = strip.sub("", (tmp_path / "fleet.html").read_text())
    assert remote == local and local.count("<svg") == 4


def test_fleet_commands_name_an_unreachable_store_without_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://op:s3cret@127.0.0.1:{free_port()}/lab"
    for action in (["migrate"], ["yield"], ["unit", "SN1"], ["trend", "vout"]):
        code, out, err = run(capsys, "fleet", *action, "--fleet", url)
        assert code == 1 and "s3cret" not in out + err
        assert err.startswith("litmus: error: fleet store postgresql://op:***@127.0.0.1:")


def test_fleet_queries_on_an_unmigrated_store_say_to_migrate(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "fleet", "yield", "--fleet", postgres_url)
    assert code == 1 and "run `litmus fleet migrate`" in err


def test_a_bad_fleet_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "fleet", "yield", "--fleet", "mysql://x")
    assert code == 2 and "--fleet" in err


NO_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as on a core install
from pytest_litmus.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_psycopg_the_commands_name_the_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    Events(tmp_path, "s-1").started("SN1").ended().write()
    for argv in (["ship"], ["fleet", "yield"], ["fleet", "migrate"]):
        proc = subprocess.run(
            [sys.executable, "-c", NO_PSYCOPG, "--data-dir", str(tmp_path), *argv, "--fleet", "postgresql://h/db"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "pip install 'pytest-litmus[fleet]'" in proc.stderr and "Traceback" not in proc.stderr


def test_without_psycopg_a_run_with_a_store_set_passes_and_says_so(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITMUS_FLEET", "postgresql://127.0.0.1/lab")
    station_project.makeconftest("import sys\nsys.modules['psycopg'] = None\n")
    station_project.makepyfile(test_rail=SUITE)
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["litmus: fleet store postgresql://127.0.0.1/lab: *pytest-litmus?fleet?*litmus ship sends it"]
    )


def test_the_sql_examples_of_docs_fleet_run_on_a_shipped_store(shipped: tuple[str, Path]) -> None:
    from docblocks import REPO, parse

    blocks = [b for b in parse(REPO / "docs" / "fleet.md") if b.lang == "sql"]
    assert len(blocks) == 4
    url, _ = shipped
    with connect(url) as conn:
        results = [conn.execute(b.text).fetchall() for b in blocks]
    assert [(r[1], r[4], r[5]) for r in results[1]] == [("cell-1", 1, "failed"), ("cell-2", 2, "passed")]
    assert [(r[0], r[1], r[4]) for r in results[2]] == [("cell-1", 2, 1), ("cell-2", 3, 1)]
