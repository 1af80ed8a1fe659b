"""A production-shaped suite with and without litmus: what the plugin costs per test and per measurement.

    python bench/bench_suite.py [--runs 7] [--tests 100] [--profile]

100 tests, each making 10 instrument calls and 5 limit-checked measurements, run
  L  with litmus: ``pytest --station cell-7 --mock`` (role fixtures, ``measure``)
  P  in plain pytest (``-p no:litmus``) on pyvisa-sim, the test opening the same
     simulated resources directly and checking the same limits with ``assert``
  S  the plain suite on litmus's own simulator library (pyvisa-sim plus locks and the
     status model, what ``--mock`` runs on), to tell the plugin's cost from the simulator's
and the same suites without measurements (``-nomeas``) and with one test (``-1``),
alternately, in a throw-away copy of the example station. Prints median wall and
CPU times, the ratios L / P and L / S, and the cost litmus adds per test and per
measurement:

  per test        ((L - P) - (L-1 - P-1)) / 99          start-up taken out
  the same, bare  ((L-nomeas - P-nomeas) - (L-1 - P-1)) / 99   its measurements taken out too
  per measurement ((L - L-nomeas) - (P - P-nomeas)) / 500

The targets are two costs: at most 150 us added per test (its 10 calls included, its
measurements not) and at most 10 us per measurement.

``--inprocess`` instead runs the suites repeatedly inside one interpreter and compares
CPU time (start-up imports paid once): a steadier per-test and per-measurement figure
on a busy machine. ``--profile`` runs the litmus suite once in-process under cProfile
and prints the functions of pytest_litmus by own time. ``--baseline-python`` adds the
litmus suites run by another interpreter (a venv of an older commit) as B.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = 100
CALLS = 10  # per test: 5 x (psu.set_voltage, dmm.measure_voltage)
MEASUREMENTS = 5

LITMUS = """
import pytest

@pytest.mark.parametrize("i", range({tests}))
def test_board(i, dmm, psu, measure):
    for k in range(5):
        psu.set_voltage(5.0)
        v = dmm.measure_voltage()
        {measure}
"""
LITMUS_MEASURE = 'measure(f"rail_{k}", v, units="V", low=3.2, high=3.4)'

PLAIN = """
import pyvisa
import pytest

SIM = {sim!r}

@pytest.fixture(scope="session")
def rm():
    rm = pyvisa.ResourceManager({library})
    yield rm
    rm.close()

@pytest.fixture(scope="session")
def dmm(rm):
    return rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR", timeout=10000, read_termination="\\n", write_termination="\\n")

@pytest.fixture(scope="session")
def psu(rm):
    return rm.open_resource("GPIB0::17::INSTR", timeout=5000, read_termination="\\n", write_termination="\\n")

@pytest.mark.parametrize("i", range({tests}))
def test_board(i, dmm, psu):
    for k in range(5):
        psu.write("VOLT 5")
        v = float(dmm.query("MEAS:VOLT:DC?").strip())
        {measure}
"""
PLAIN_MEASURE = "assert 3.2 <= v <= 3.4"


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_suites(root: Path) -> None:
    shutil.copytree(REPO / "stations", root / "stations")
    sim = str(root / "stations" / "sims" / "cell-7.yaml")
    for suffix, tests, measured in (("", TESTS, True), ("_nomeas", TESTS, False), ("_1", 1, True)):
        (root / f"test_litmus{suffix}.py").write_text(
            LITMUS.format(tests=tests, measure=LITMUS_MEASURE if measured else "pass")
        )
        (root / f"test_plain{suffix}.py").write_text(
            PLAIN.format(sim=sim, tests=tests, measure=PLAIN_MEASURE if measured else "pass", library='f"{SIM}@sim"')
        )
        # the same plain suite on litmus's simulator library (pyvisa-sim + locks + status model)
        (root / f"test_simlib{suffix}.py").write_text(
            "from pytest_litmus.sim.library import fresh_sim_library\n"
            + PLAIN.format(
                sim=sim, tests=tests, measure=PLAIN_MEASURE if measured else "pass", library="fresh_sim_library(SIM)"
            )
        )


def profile(root: Path) -> None:
    import cProfile
    import pstats

    import pytest

    os.chdir(root)
    prof = cProfile.Profile()
    prof.enable()
    pytest.main(["-q", "-p", "no:cacheprovider", "test_litmus.py", "--station", "cell-7", "--mock"])
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats("pytest_litmus", 30)
    stats.sort_stats("cumulative").print_stats("pytest_litmus", 30)


def inprocess(root: Path, runs: int, pick: Any = statistics.median) -> None:
    """Per-test and per-measurement costs from repeated in-process runs (CPU time, start-up imports paid once)."""
    import contextlib
    import io

    import pytest

    os.chdir(root)
    suites = {
        "L": ["test_litmus.py", "--station", "cell-7", "--mock"],
        "L-nomeas": ["test_litmus_nomeas.py", "--station", "cell-7", "--mock"],
        "L-1": ["test_litmus_1.py", "--station", "cell-7", "--mock"],
        "S": ["-p", "no:litmus", "test_simlib.py"],
        "S-nomeas": ["-p", "no:litmus", "test_simlib_nomeas.py"],
        "S-1": ["-p", "no:litmus", "test_simlib_1.py"],
    }
    times: dict[str, list[float]] = {name: [] for name in suites}
    for i in range(runs + 1):
        for name, suite in suites.items():
            start = time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):
                code = pytest.main(["-q", "-p", "no:cacheprovider", *suite])
            assert code == 0, (name, code)
            if i:  # the first round imports everything
                times[name].append(time.process_time() - start)
    med = {name: pick(ts) for name, ts in times.items()}
    print(
        f"in-process CPU time, {pick.__name__} of {runs} alternating runs (S: plain pytest on litmus's simulator library)"
    )
    for name, seconds in med.items():
        print(f"  {name:10s} {seconds * 1000:8.1f} ms")
    per_test = ((med["L"] - med["S"]) - (med["L-1"] - med["S-1"])) / (TESTS - 1)
    per_test_bare = ((med["L-nomeas"] - med["S-nomeas"]) - (med["L-1"] - med["S-1"])) / (TESTS - 1)
    per_measurement = ((med["L"] - med["L-nomeas"]) - (med["S"] - med["S-nomeas"])) / (TESTS * MEASUREMENTS)
    print(f"  added per test, 10 calls + 5 measurements  {per_test * 1e6:6.0f} us")
    print(f"  added per test, 10 calls, no measurements  {per_test_bare * 1e6:6.0f} us (target <= 150)")
    print(f"  added per measurement                      {per_measurement * 1e6:6.1f} us (target <= 10)")
    print(f"  session set-up and tear-down, L-1 - S-1    {(med['L-1'] - med['S-1']) * 1000:6.1f} ms")


def main() -> int:
    global TESTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--tests", type=int, default=TESTS, help="tests per suite (1000: the per-test costs outweigh start-up)"
    )
    parser.add_argument(
        "--min", action="store_true", help="in-process: the fastest run of each suite, not the median (a busy machine)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the litmus suite in-process instead")
    parser.add_argument(
        "--inprocess", action="store_true", help="measure per-test and per-measurement costs in-process instead"
    )
    parser.add_argument(
        "--baseline-python",
        metavar="PYTHON",
        help="also run the litmus suites (as B, B-nomeas, B-1) with this interpreter, e.g. a venv of an older commit",
    )
    args = parser.parse_args()
    TESTS = args.tests
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_suites(root)
        os.environ["LITMUS_HOME"] = str(root / "home")
        if args.profile:
            profile(root)
            return 0
        if args.inprocess:
            inprocess(root, args.runs, min if args.min else statistics.median)
            return 0
        # As users run: with bytecode caches (an environment that forbids them would charge
        # our not-yet-compiled modules, and not site-packages' compiled ones, on every run).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        commands: dict[str, list[str]] = {}
        for suffix in ("", "_nomeas", "_1"):
            label = suffix.replace("_", "-")
            commands[f"L{label}"] = [*pytest, f"test_litmus{suffix}.py", "--station", "cell-7", "--mock"]
            commands[f"P{label}"] = [*pytest, "-p", "no:litmus", f"test_plain{suffix}.py"]
            if suffix != "_nomeas":
                commands[f"S{label}"] = [*pytest, "-p", "no:litmus", f"test_simlib{suffix}.py"]
            if args.baseline_python:
                commands[f"B{label}"] = [args.baseline_python, *commands[f"L{label}"][1:]]
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():
            wall(cmd, root, env)  # warm-up
        for _ in range(args.runs):
            for name, cmd in commands.items():
                w, c = wall(cmd, root, env)
                walls[name].append(w)
                cpus[name].append(c)
    print(f"medians over {args.runs} alternating runs ({TESTS} tests x {CALLS} calls x {MEASUREMENTS} measurements)")
    print("  S = the plain suite on litmus's simulator library instead of pyvisa-sim's")
    for kind, times in (("wall", walls), ("cpu", cpus)):
        med = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"{kind} time")
        for name, seconds in med.items():
            print(f"  {name:10s} {seconds * 1000:8.1f} ms")
        per_test = ((med["L"] - med["P"]) - (med["L-1"] - med["P-1"])) / (TESTS - 1)
        per_test_bare = ((med["L-nomeas"] - med["P-nomeas"]) - (med["L-1"] - med["P-1"])) / (TESTS - 1)
        per_test_sim = ((med["L"] - med["S"]) - (med["L-1"] - med["S-1"])) / (TESTS - 1)
        per_measurement = ((med["L"] - med["L-nomeas"]) - (med["P"] - med["P-nomeas"])) / (TESTS * MEASUREMENTS)
        print(f"  ratio L / P                       {med['L'] / med['P']:6.3f}  (target <= 1.10)")
        print(f"  ratio L / S                       {med['L'] / med['S']:6.3f}  (same simulator on both sides)")
        print(f"  added per test over P             {per_test * 1e6:6.0f} us (10 calls and 5 measurements)")
        print(f"  the same, without measurements    {per_test_bare * 1e6:6.0f} us (target <= 150)")
        print(
            f"  added per test over S             {per_test_sim * 1e6:6.0f} us (the plugin without the simulator's share)"
        )
        print(f"  added per measurement             {per_measurement * 1e6:6.1f} us (target <= 10)")
        print(f"  start-up L-1 - P-1                {(med['L-1'] - med['P-1']) * 1000:6.1f} ms")
        print(f"  start-up L-1 - S-1                {(med['L-1'] - med['S-1']) * 1000:6.1f} ms")
        if args.baseline_python:
            b_test = ((med["B"] - med["P"]) - (med["B-1"] - med["P-1"])) / (TESTS - 1)
            b_meas = ((med["B"] - med["B-nomeas"]) - (med["P"] - med["P-nomeas"])) / (TESTS * MEASUREMENTS)
            print(
                f"  baseline: ratio B / P {med['B'] / med['P']:6.3f}, per test {b_test * 1e6:6.0f} us, "
                f"per measurement {b_meas * 1e6:6.1f} us, start-up {(med['B-1'] - med['P-1']) * 1000:6.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
