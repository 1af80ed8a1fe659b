"""Instrument calls through the instrument server vs the in-process proxy, on the simulator.

    python bench/bench_server.py [--calls N]

A holder serves a mock cell-7; a client *process* calls ``dmm.query("*IDN?")``
through the server. Printed: per-call medians and calls per second for the raw
pyvisa-sim query (the baseline the proxy wraps), the in-process proxy, the
remote proxy with one client (``--rounds`` client processes in turn; the median
round is reported, with every round's median, as a shared VM is noisy), and
the aggregate rate of two client processes at once. Target (issue 5): at most 150 us added per call over loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIENT = """
import json, sys, time
from pytest_litmus.server import connect_remote
dmm = connect_remote().instrument("dmm")
n = int(sys.argv[1])
for _ in range(200):
    dmm.query("*IDN?")
samples = []
start = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    dmm.query("*IDN?")
    samples.append(time.perf_counter() - t)
total = time.perf_counter() - start
samples.sort()
print(json.dumps({"median": samples[n // 2], "p99": samples[int(n * 0.99)], "rate": n / total}))
"""


def per_call(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median seconds per call, calls per second)."""
    for _ in range(200):
        fn()
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), n / (time.perf_counter() - start)


def clients(env: dict[str, str], count: int, n: int) -> list[dict[str, float]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, str(n)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(count)
    ]
    return [json.loads(p.communicate()[0]) for p in procs]


def main() -> None:
    import os

    from pytest_litmus.config import load_station_file
    from pytest_litmus.connection import StationConnection
    from pytest_litmus.server import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per measurement (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="client processes run one after another (5)")
    options = parser.parse_args()
    n = options.calls
    with tempfile.TemporaryDirectory() as tmp:
        config = load_station_file(REPO / "stations" / "cell-7.yaml")
        with StationConnection(config, data_dir=tmp, mock=True) as station:
            proxy = station.instrument("dmm")
            from pytest_litmus.instruments import proxy_state

            raw = proxy_state(proxy).driver.resource
            raw_median, raw_rate = per_call(lambda: raw.query("*IDN?"), n)
            local_median, local_rate = per_call(lambda: proxy.query("*IDN?"), n)
            with serve(station) as server:
                env = {**os.environ, **server.environ}
                rounds = [clients(env, 1, n)[0] for _ in range(options.rounds)]
                two = clients(env, 2, n)
    rounds.sort(key=lambda r: r["median"])
    one = rounds[len(rounds) // 2]
    added = one["median"] - local_median
    rows = [
        ("raw pyvisa-sim query", raw_median, raw_rate),
        ("in-process proxy", local_median, local_rate),
        ("instrument server, 1 client (median round)", one["median"], one["rate"]),
    ]
    print(f"{n} calls of dmm.query('*IDN?') on the simulator, Python {sys.version.split()[0]}")
    for name, median, rate in rows:
        print(f"  {name:<44} {median * 1e6:8.1f} us/call  {rate:9.0f} calls/s  ({median / raw_median:.1f}x raw)")
    print(f"  {'  p99 of that round':<44} {one['p99'] * 1e6:8.1f} us/call")
    spread = ", ".join(f"{r['median'] * 1e6:.0f}" for r in rounds)
    print(f"  {'  medians of all rounds':<44} {spread} us/call")
    print(
        f"  {'instrument server, 2 clients at once':<44} {'':>8}           {sum(c['rate'] for c in two):9.0f} calls/s total"
    )
    verdict = "within" if added <= 150e-6 else "OVER"
    print(f"added per call by the server: {added * 1e6:.1f} us ({verdict} the 150 us target)")


if __name__ == "__main__":
    main()
