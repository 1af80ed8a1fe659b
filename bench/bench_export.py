"""Exporting a session of 10,000 measurements: read + build the record, then each format.

    python bench/bench_export.py [--measurements 10000] [--tests 500] [--rounds 5]

Writes a session file the way the writer does (500 tests, 20 measurements each, with
dut/attempt/limits fields; every tenth test rerun once), then times, best of
``--rounds``: reading it into a record, and ``litmus export`` of each format end to end
(``litmus export -o FILE`` in process: read with the CLI's checks, record, render, write). Target (issue 11): every format <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_litmus.cli import main as main_cli  # noqa: E402
from pytest_litmus.export import csv as csv_export  # noqa: E402
from pytest_litmus.export import junit, openhtf  # noqa: E402
from pytest_litmus.records import read_record  # noqa: E402


def write_session(path: Path, measurements: int, tests: int) -> None:
    per_test = max(1, measurements // tests)
    lines, seq, ts = [], 0, 1_767_225_600.0

    def add(type_: str, **fields: object) -> None:
        nonlocal seq
        seq += 1
        lines.append(json.dumps({"seq": seq, "ts": ts + seq * 1e-3, "session": "bench", "type": type_, **fields}))

    add("SessionStarted", station="cell-7", host="bench", dut="SN1", unit_attempt=1, limits_file=None)
    limits = {
        "low": 3.2,
        "high": 3.3 * 1.01,
        "low_inclusive": True,
        "high_inclusive": True,
        "units": "V",
        "source": "file",
    }
    done = 0
    for t in range(tests):
        nodeid = f"tests/test_board.py::test_rail[{t}]"
        for attempt in (1, 2) if t % 10 == 0 else (1,):
            add("TestStarted", nodeid=nodeid, dut="SN1", attempt=attempt)
            for i in range(per_test):
                if done >= measurements and attempt == 1:
                    break
                add("Measurement", name=f"rail_{i}", value=3.3 + i * 1e-4, units="V", low=3.2, high=3.3 * 1.01,
                    outcome="passed", nodeid=nodeid, dut="SN1", attempt=attempt, limits=limits, marginal=False,
                    where="tests/test_board.py:42")  # fmt: skip
                done += attempt == 1
            outcome = "rerun" if attempt == 1 and t % 10 == 0 else "passed"
            add("TestOutcome", nodeid=nodeid, outcome=outcome, duration=0.01, message=None, dut="SN1", attempt=attempt)
    add("SessionEnded", outcome="passed", counts={})
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sessions" / "bench" / "events.jsonl"
        write_session(path, args.measurements, args.tests)
        record = read_record(path)
        print(f"{record.measurement_count} measurements ({path.stat().st_size / 1e6:.1f} MB of events)")
        print(f"  read + record   {best(lambda: read_record(path), args.rounds) * 1000:7.1f} ms")
        worst = 0.0
        for name, render in (("csv", csv_export.render), ("junit", junit.render), ("openhtf", openhtf.render)):
            seconds = best(lambda render=render: render(record), args.rounds)  # type: ignore[misc]
            out = str(Path(tmp) / f"out.{name}")
            argv = ["--data-dir", tmp, "export", "bench", "--format", name, "-o", out]
            whole = best(lambda argv=argv: main_cli(argv), args.rounds)  # type: ignore[misc]
            worst = max(worst, whole)
            print(f"  {name:<8} render {seconds * 1000:6.1f} ms; litmus export {whole * 1000:6.1f} ms")
        print(f"worst {worst * 1000:.0f} ms: {'OK' if worst <= 1.0 else 'MISSED'} (target <= 1000 ms)")
        return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
