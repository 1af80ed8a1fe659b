"""What the plugin adds to a pytest run: one test, bare pytest vs ``--station cell-7 --mock``.

    python bench/bench_plugin.py [--runs 15]

Runs, alternately, in a throw-away copy of the example station:
  A  pytest test_one.py                          (plugin installed, no station: must cost ~nothing)
  B  pytest test_one.py -p no:litmus             (bare pytest)
  C  pytest test_one.py --station cell-7 --mock  (the test uses the dmm)
and prints the median wall time of each and the differences (target: C - B <= 150 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "def test_rail(dmm):\n    assert 3.2 < dmm.measure_voltage() < 3.4\n"
PLAIN = "def test_rail():\n    assert True\n"


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "stations", root / "stations")
        (root / "test_one.py").write_text(TEST)
        (root / "test_plain.py").write_text(PLAIN)
        env = {**os.environ, "LITMUS_HOME": str(root / "home")}
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        commands = {
            "A no station": [*pytest, "test_plain.py"],
            "B bare pytest": [*pytest, "-p", "no:litmus", "test_plain.py"],
            "C --station --mock": [*pytest, "test_one.py", "--station", "cell-7", "--mock"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():
            wall(cmd, root, env)  # warm-up
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, root, env))
    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    print(f"median wall time over {args.runs} alternating runs")
    for name, ms in med.items():
        print(f"  {name:20s} {ms:7.1f} ms")
    print(f"  plugin, no station   {med['A no station'] - med['B bare pytest']:+7.1f} ms over bare pytest")
    print(
        f"  plugin, mock station {med['C --station --mock'] - med['B bare pytest']:+7.1f} ms over bare pytest (target <= 150)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
