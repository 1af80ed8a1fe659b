"""A query through ``litmus emulate``'s front doors, via pyvisa-py on loopback: HiSLIP and raw SOCKET.

    python bench/bench_emulate.py [--calls N] [--rounds R]

``litmus emulate`` runs as its own process (as in CI), on the example station's
DMM; this process opens it through ``pyvisa.ResourceManager("@py")`` twice,
``TCPIP0::127.0.0.1::hislip0,<port>::INSTR`` and
``TCPIP0::127.0.0.1::<port>::SOCKET``, and times ``query("*IDN?")``. Printed:
the median per call of each round, the median round, and the p99. Target
(issue 12): at most 150 us per query on either door.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIM = REPO / "stations" / "sims" / "cell-7.yaml"
DMM = "TCPIP0::192.168.1.50::inst0::INSTR"
TARGET_US = 150.0


def samples(inst: Any, n: int) -> list[float]:
    for _ in range(200):
        inst.query("*IDN?")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        inst.query("*IDN?")
        out.append(time.perf_counter() - t)
    out.sort()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import pyvisa

    server = subprocess.Popen(
        [sys.executable, "-m", "pytest_litmus.cli", "emulate", str(SIM), "--resource", DMM],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    socket_resource, hislip_resource = server.stdout.readline().strip(), server.stdout.readline().strip()
    rm = pyvisa.ResourceManager("@py")
    results: dict[str, Any] = {}
    try:
        doors = {"hislip": hislip_resource, "socket": socket_resource}
        insts = {
            door: rm.open_resource(name, read_termination="\n", write_termination="\n", timeout=5000)
            for door, name in doors.items()
        }
        rounds: dict[str, list[list[float]]] = {door: [] for door in doors}
        for _ in range(args.rounds):  # doors interleaved, so both see the same machine noise
            for door, inst in insts.items():
                rounds[door].append(samples(inst, args.calls))
        for door, runs in rounds.items():
            medians = [run[len(run) // 2] * 1e6 for run in runs]
            p99 = statistics.median(run[int(len(run) * 0.99)] for run in runs) * 1e6
            median = statistics.median(medians)
            results[door] = {
                "resource": doors[door],
                "median_us": round(median, 1),
                "p99_us": round(p99, 1),
                "rounds_us": [round(m, 1) for m in medians],
                "within_target": median <= TARGET_US,
            }
            print(
                f"{door:7} median {median:6.1f} us  p99 {p99:6.1f} us  rounds {[round(m, 1) for m in medians]}"
                f"  (target <= {TARGET_US:.0f} us)"
            )
        for inst in insts.values():
            inst.close()
    finally:
        rm.close()
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(json.dumps(results))
    return 0 if all(r["within_target"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
