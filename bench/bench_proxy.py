"""Proxy overhead: N queries on the mock DMM, raw pyvisa resource vs the litmus proxy.

    python bench/bench_proxy.py [--n 20000] [--repeat 7]

Two comparisons, interleaved in one run:

- proxy over raw: both sides query the same plain pyvisa-sim resource (cell-7's
  simulated DMM); the proxy side goes through the Dmm driver, the per-instrument
  lock, the timing and one InstrumentCall line written to an events.jsonl per call
  (target: proxy <= 1.25x raw);
- the public mock path over plain pyvisa-sim: ``connect("cell-7", mock=True)``'s
  ``dmm.query`` (litmus' simulator, the proxy, the event file) against
  ``resource.query`` on pyvisa-sim's own ``SimVisaLibrary`` (target <= 1.35x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUERY = "MEAS:VOLT:DC?"


def per_call(fn: object, n: int) -> float:
    call = fn  # local for speed
    start = time.perf_counter()
    for _ in range(n):
        call(QUERY)  # type: ignore[operator]
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="queries per timed run")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each (median reported)")
    args = parser.parse_args()
    import pyvisa
    from pyvisa_sim.highlevel import SimVisaLibrary

    from pytest_litmus import connect
    from pytest_litmus.drivers import Dmm
    from pytest_litmus.events import EventFile, Recorder
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.instruments import InstrumentProxy

    sim = REPO / "stations" / "sims" / "cell-7.yaml"
    rm = pyvisa.ResourceManager(SimVisaLibrary(str(sim)))  # plain pyvisa-sim, as the target is stated
    resource_name = "TCPIP0::192.168.1.50::inst0::INSTR"
    raw = rm.open_resource(resource_name, read_termination="\n", write_termination="\n")
    with tempfile.TemporaryDirectory() as data_dir:
        recorder = Recorder("bench", EventFile(Path(data_dir) / "events.jsonl"), LitmusPluginManager())
        recorder.nodeid = "tests/test_power.py::test_rail_3v3"
        proxy = InstrumentProxy(Dmm(raw), role="dmm", resource=resource_name, recorder=recorder)
        os.chdir(REPO)  # connect() finds stations/cell-7.yaml from the working directory
        station = connect("cell-7", mock=True, data_dir=data_dir).start()
        mock = station.instrument("dmm")
        per_call(raw.query, 2000)
        per_call(proxy.query, 2000)
        per_call(mock.query, 2000)
        raws, proxies, ratios, mocks, mock_ratios = [], [], [], [], []
        for _ in range(args.repeat):  # interleave, so drift hits all sides alike
            r = per_call(raw.query, args.n)
            p = per_call(proxy.query, args.n)
            m = per_call(mock.query, args.n)
            raws.append(r)
            proxies.append(p)
            mocks.append(m)
            ratios.append(p / r)
            mock_ratios.append(m / r)
        station.__exit__(None, None, None)
        recorder.close()
        with open(recorder.writer.path, "rb") as handle:
            lines = sum(1 for _ in handle)
    raw_us, proxy_us = statistics.median(raws) * 1e6, statistics.median(proxies) * 1e6
    mock_us = statistics.median(mocks) * 1e6
    print(f"python {sys.version.split()[0]}, {args.repeat} runs x {args.n} queries of {QUERY!r} on the mock dmm")
    print(f"raw pyvisa resource.query : {raw_us:7.2f} us/call (median)")
    print(f"litmus proxy.query        : {proxy_us:7.2f} us/call (median, events on: {lines} lines written)")
    print(f"overhead                  : {proxy_us - raw_us:7.2f} us/call")
    print(f"ratio proxy/raw           : {statistics.median(ratios):7.3f} (median of paired runs; target <= 1.25)")
    print(f"connect(mock=True) query  : {mock_us:7.2f} us/call (median; litmus simulator, proxy, events)")
    print(f"ratio mock/plain sim      : {statistics.median(mock_ratios):7.3f} (median of paired runs; target <= 1.35)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
