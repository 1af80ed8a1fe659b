"""Limits files: what a lookup adds to ``measure``, and what loading a large file adds to start-up.

    python bench/bench_limits.py [--rounds 7] [--calls 20000] [--names 1000]

1. ``station.measure(name, value)`` on a started mock session (events written to
   a temporary data dir), in a loop: inline limits and no limits file against a
   1000-name limits file, the name looked up there. Paired, interleaved rounds;
   the median per call of each, and the median of the paired differences.
   Target: at most 10 µs added per measurement.
2. Loading a 1000-name limits file (``load_limits``: read, SHA-256, YAML, checks),
   the first time and again from the cache of checked tables, and a station file
   with the same table inline, against the station file without it. Target: at
   most 5 ms added to start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_litmus import connect  # noqa: E402
from pytest_litmus.config import load_station_file  # noqa: E402
from pytest_litmus.limits import load_limits  # noqa: E402

KINDS = (
    "{{low: {a}, high: {b}, units: V}}",
    "{{nominal: {a}, tolerance_percent: 2, units: V, marginal_low: {m}}}",
    "{{high: {b}, high_inclusive: false, units: mA}}",
    '{{equals: "fw-{i}"}}',
)


def limits_text(names: int) -> str:
    lines = ["measurements:"]
    for i in range(names):
        kind = KINDS[i % len(KINDS)]
        lines.append(f"  m{i:04d}: " + kind.format(a=1.0 + i / 1000, b=2.0 + i / 1000, m=1.001 + i / 1000, i=i))
    return "\n".join(lines) + "\n"


def per_call(measure: Callable[[int], object], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        measure(i)
    return (time.perf_counter() - start) / calls


def bench_measure(root: Path, rounds: int, calls: int, names: int) -> None:
    limits = root / "limits.yaml"
    limits.write_text(limits_text(names))
    os.chdir(root)
    inline_s = connect("cell-7", mock=True, data_dir=root / "inline").start()
    file_s = connect("cell-7", mock=True, data_dir=root / "file", limits=limits).start()
    listed = [f"m{i:04d}" for i in range(0, names, 4)]  # the range kind: judged like the inline limits

    def inline(i: int) -> object:
        return inline_s.measure("rail", 1.5, units="V", low=1.0, high=2.0)

    def from_file(i: int) -> object:
        return file_s.measure(listed[i % len(listed)], 1.5)

    def bare(i: int) -> object:
        return inline_s.measure("rail", 1.5)

    results: dict[str, list[float]] = {"inline": [], "file": [], "bare": []}
    for _ in range(rounds):
        for name, fn in (("inline", inline), ("file", from_file), ("bare", bare)):
            results[name].append(per_call(fn, calls))
    inline_s.stop()
    file_s.stop()
    med = {k: statistics.median(v) * 1e6 for k, v in results.items()}
    diffs = sorted((f - i) * 1e6 for f, i in zip(results["file"], results["inline"], strict=True))
    print(f"measure(), {calls} calls x {rounds} rounds, events written to a temporary data dir")
    print(f"  no limits at all             {med['bare']:7.2f} us/call")
    print(f"  inline low/high, no file     {med['inline']:7.2f} us/call")
    print(f"  name looked up in the file   {med['file']:7.2f} us/call")
    print(
        f"  added by the file (paired)   {statistics.median(diffs):+7.2f} us (min {diffs[0]:+.2f}, max {diffs[-1]:+.2f})"
    )


def best_of(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench_load(root: Path, rounds: int, names: int) -> None:
    limits = root / "limits.yaml"
    limits.write_text(limits_text(names))
    station = (REPO / "stations" / "cell-7.yaml").read_text()
    (root / "stations").mkdir(exist_ok=True)
    plain = root / "stations" / "plain.yaml"
    plain.write_text(station.replace("station: cell-7", "station: plain").replace("sims/", f"{REPO}/stations/sims/"))
    inline = root / "stations" / "inline.yaml"
    body = "limits:\n" + "".join("  " + line + "\n" for line in limits_text(names).splitlines())
    inline.write_text(plain.read_text().replace("station: plain", "station: inline") + body)
    cache = root / "cache"
    cache.mkdir()
    cold_ms = best_of(lambda: load_limits(limits), rounds)
    load_limits(limits, cache=cache)
    warm_ms = best_of(lambda: load_limits(limits, cache=cache), rounds)
    plain_ms = best_of(lambda: load_station_file(plain), rounds)
    load_station_file(inline, limits_cache=cache)
    inline_ms = best_of(lambda: load_station_file(inline, limits_cache=cache), rounds)
    inline_cold_ms = best_of(lambda: load_station_file(inline), rounds)
    print(f"start-up, {names}-name limits file ({limits.stat().st_size} bytes), median of {rounds}")
    print(f"  load_limits(file), first time (YAML)          {cold_ms:6.2f} ms")
    print(f"  load_limits(file), same content again (cache) {warm_ms:6.2f} ms")
    print(f"  station file without limits                   {plain_ms:6.2f} ms")
    print(
        f"  station file, table inline, first time        {inline_cold_ms:6.2f} ms (+{inline_cold_ms - plain_ms:.2f} ms)"
    )
    print(f"  station file, table inline, again (cache)     {inline_ms:6.2f} ms (+{inline_ms - plain_ms:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--names", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "stations").mkdir()
        for item in (REPO / "stations").iterdir():
            target = root / "stations" / item.name
            target.symlink_to(item)
        bench_load(root, args.rounds * 3, args.names)
        bench_measure(root, args.rounds, args.calls, args.names)


if __name__ == "__main__":
    main()
