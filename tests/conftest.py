"""Fixtures shared by the test suite: a throw-away project holding the example station."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with ``stations/cell-7.yaml`` and its simulation, as the working directory.

    ``LITMUS_HOME`` points at ``<project>/home`` so nothing is written outside ``tmp_path``.
    """
    shutil.copytree(REPO / "stations", tmp_path / "stations")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITMUS_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def station_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with the example station and a private data dir."""
    shutil.copytree(REPO / "stations", pytester.path / "stations")
    monkeypatch.setenv("LITMUS_HOME", str(pytester.path / "home"))
    return pytester
