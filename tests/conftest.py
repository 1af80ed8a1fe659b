"""Fixtures shared by the test suite: a throw-away project holding the example station."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import Cluster, missing_reason

REPO = Path(__file__).resolve().parent.parent
_DATABASES = itertools.count()


@pytest.fixture(autouse=True)
def _end_spawned() -> Iterator[None]:
    """After each test, the helper processes it spawned (tests/serverhelpers) are ended and their pipes closed."""
    yield
    helpers = sys.modules.get("serverhelpers")
    if helpers is not None:
        helpers.end_spawned()


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
def sim_station(project: Path) -> str:
    """cell-7 on the simulator *without* --mock: real locks, as on hardware (station ``bench``)."""
    text = (project / "stations" / "cell-7.yaml").read_text()
    text = text.replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim")
    (project / "stations" / "bench.yaml").write_text(text.replace("station: cell-7", "station: bench"))
    return "bench"


@pytest.fixture
def station_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with the example station and a private data dir."""
    shutil.copytree(REPO / "stations", pytester.path / "stations")
    monkeypatch.setenv("LITMUS_HOME", str(pytester.path / "home"))
    return pytester


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A throw-away PostgreSQL server for this test process (tests/pgserver.py).

    Skips where PostgreSQL is not installed, except under ``CI=true``: there it fails.
    """
    reason = missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run these tests (.ci/run installs postgresql)")
        pytest.skip(reason)
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the throw-away server, named after the test."""
    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16] + f"_{next(_DATABASES)}"
    return postgres_cluster.database(name)
