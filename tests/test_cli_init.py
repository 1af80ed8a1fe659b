"""``litmus init``: a first project that runs, and never overwrites anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_litmus.cli import main


def test_init_writes_a_project_whose_mock_run_passes(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pytester.path
    assert main(["init", "bench-1", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "next: pytest --station bench-1 --mock" in out
    for name in ("litmus.yaml", "stations/bench-1.yaml", "stations/sims/bench-1.yaml", "tests/test_bench_1.py"):
        assert (root / name).is_file(), name
    result = pytester.runpytest_subprocess("--station", "bench-1", "--mock", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert list((root / ".litmus" / "sessions").glob("*/events.jsonl"))  # the data dir litmus.yaml names
    result = pytester.runpytest_subprocess("--mock", "-p", "no:cacheprovider")  # default_station from litmus.yaml
    result.assert_outcomes(passed=2)


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "litmus.yaml").write_text("data_dir: elsewhere\n")
    assert main(["init", "bench-1", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "litmus.yaml already exist(s); nothing was written" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "litmus.yaml").read_text() == "data_dir: elsewhere\n"
    assert not (tmp_path / "stations").exists()


@pytest.mark.parametrize("station", ["../x", "a/b", "", ".hidden", "x..y", "sp ace", "nul\x00"])
def test_init_refuses_station_ids_that_are_not_plain_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], station: str
) -> None:
    assert main(["init", station, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("litmus init: error:") and "plain station name" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_init_into_a_missing_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "bench-1", "--dir", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
