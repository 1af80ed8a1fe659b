"""A station page served by a real ``litmus page`` process over a throw-away project with the example station."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from children import end

REPO = Path(__file__).resolve().parent.parent
LITMUS = Path(sys.executable).parent / "litmus"
#: Runs the project's tests on the simulated example station for the serial typed on the page.
MOCK_COMMAND = "pytest -q -p no:cacheprovider --station {station} --dut {serial} --mock"


def make_project(
    root: Path, tests: dict[str, str], *, command: str = MOCK_COMMAND, pattern: str = "PB-[0-9]{4}"
) -> Path:
    """A project at ``root``: the example station, ``tests`` (file name -> source), and a litmus.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "stations", root / "stations")
    for name, source in tests.items():
        (root / name).write_text(source, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (root / "litmus.yaml").write_text(
        f"data_dir: data\ndut_pattern: {pattern!r}\npage:\n  command: {command!r}\n", encoding="utf-8"
    )
    return root


def example_project(root: Path) -> Path:
    """The example power-board suite (examples/) as a project."""
    return make_project(
        root,
        {
            name: (REPO / "examples" / name).read_text(encoding="utf-8")
            for name in ("conftest.py", "test_power_board.py")
        },
    )


@contextmanager
def page_server(project: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``litmus page --port 0`` in ``project``: yields its URL and process; stopped with SIGINT after."""
    env = {**os.environ}
    env.pop("LITMUS_HOME", None)
    process = subprocess.Popen(
        [str(LITMUS), "page", "--station", "cell-7", "--port", "0", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("litmus page: http"):
            raise AssertionError(f"litmus page did not start: {line}{process.stderr.read() if process.stderr else ''}")
        yield line.split()[2], process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            end(process)
