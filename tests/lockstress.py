"""The lock stress run shared by the host and PostgreSQL lock tests: processes that take one lock in turn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STRESS = Path(__file__).parent / "lockhelpers" / "stress.py"


def run_stress(
    tmp_path: Path, resource: str, workers: int, cycles: int, *, data_dirs: int = 1, server: str = ""
) -> list[str]:
    """Start ``workers`` processes of ``cycles`` lock cycles each (over ``data_dirs`` data dirs, on ``server``
    if given); check they all end well and never overlap; return the begin/end marks they wrote."""
    marks = tmp_path / "marks.txt"
    started = [
        subprocess.Popen(
            [sys.executable, str(STRESS), str(tmp_path / f"pc{i % data_dirs}" if data_dirs > 1 else tmp_path),
             resource, str(marks), str(cycles), *([server] if server else [])]
        )
        for i in range(workers)
    ]  # fmt: skip
    try:
        codes = [p.wait(timeout=240) for p in started]  # hang guard: a deadlock fails here
    finally:
        for p in started:
            p.kill()
    assert codes == [0] * workers
    lines = marks.read_text().splitlines()
    assert len(lines) == 2 * workers * cycles
    for begin, end in zip(lines[::2], lines[1::2], strict=True):
        assert begin.startswith("B ") and end == "E " + begin[2:], (begin, end)  # 0 double holds
    return lines
