"""SRQ wake-up latency per mechanism, and bus transactions for a 1 s operation.

    python bench/bench_srq.py [--repeat 20]

Latency is measured from the moment the simulator completes the operation
(its timer fires and sets OPC) to the moment ``waiter.wait()`` has the status
byte, for operations of 2 ms, 20 ms and 200 ms:

- ``event``: simulator SRQ events (``wait_on_event``), compared with a raw
  pyvisa ``wait_on_event`` + ``read_stb``;
- ``read_stb``: serial-poll back-off on the simulator with events switched off;
- ``stb_query``: ``*STB?`` back-off through pyvisa-py over a real TCP socket
  to ``litmus emulate`` (in-process, 127.0.0.1).

Transactions: a 1 s operation waited by each polling mechanism (polls plus the
final ``*ESR?``) versus a naive loop sending a status query every 10 ms.
Targets: event < 1 ms; polling < 5 ms latency at <= 30 transactions per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyvisa import constants  # noqa: E402

from pytest_litmus import srq  # noqa: E402
from pytest_litmus.sim import resource_manager  # noqa: E402
from pytest_litmus.sim.emulate import Emulator  # noqa: E402

DURATIONS = {"OP2MS": 0.002, "OP20MS": 0.02, "OP200MS": 0.2, "OP1S": 1.0}
SIM = """spec: "1.1"
devices:
  dev:
    eom:
      GPIB INSTR: {q: "\\n", r: "\\n"}
    dialogues:
      - {q: "*IDN?", r: "LITMUS,BENCH,0,1"}
    litmus:
      operations: {OPERATIONS}
resources:
  GPIB0::1::INSTR: {device: dev}
  GPIB0::2::INSTR: {device: dev, litmus: {service_requests: false}}
""".replace("OPERATIONS", ", ".join(f"{name}: {seconds}" for name, seconds in DURATIONS.items()))


def completion_clock(device: Any) -> list[float]:
    """Record when the simulated device completes each operation."""
    stamps: list[float] = []
    finish = device.status.finish_operation

    def stamped() -> None:
        stamps.append(time.perf_counter())
        finish()

    device.status.finish_operation = stamped
    return stamps


def latencies(
    wait: Callable[[], Any], start: Callable[[str], None], stamps: list[float], op: str, n: int
) -> list[float]:
    out = []
    for _ in range(n):
        stamps.clear()
        start(op)
        wait()
        out.append(time.perf_counter() - stamps[-1])
    return out


def describe(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):7.3f} ms  p90 {ms[int(len(ms) * 0.9) - 1]:7.3f} ms  max {ms[-1]:7.3f} ms"


def bench_latency(sim: Path, emulator: Emulator, repeat: int) -> None:
    rm = resource_manager(sim, fresh=True)
    sessions = {
        "event": (
            rm.open_resource("GPIB0::1::INSTR", read_termination="\n", write_termination="\n"),
            rm.visalib.device("GPIB0::1::INSTR"),
        ),
        "read_stb": (
            rm.open_resource("GPIB0::2::INSTR", read_termination="\n", write_termination="\n"),
            rm.visalib.device("GPIB0::2::INSTR"),
        ),
    }
    import pyvisa

    py = pyvisa.ResourceManager("@py")
    sock = py.open_resource(emulator.visa_resource, read_termination="\n", write_termination="\n", timeout=5000)
    sessions["stb_query"] = (sock, emulator.device)

    raw_inst, raw_dev = sessions["event"]
    print("SRQ wake-up latency after completion")
    for op in ("OP2MS", "OP20MS", "OP200MS"):
        n = repeat if op != "OP200MS" else max(5, repeat // 2)
        print(f"  {op} ({DURATIONS[op] * 1000:g} ms operation), {n} runs")
        for mechanism, (inst, device) in sessions.items():
            stamps = completion_clock(device)
            waiter = srq.arm(inst)
            got = latencies(
                lambda waiter=waiter: waiter.wait(timeout=10),
                lambda o, inst=inst: inst.write(f"{o};*OPC"),
                stamps,
                op,
                n,
            )
            print(f"    {mechanism:10s} {describe(got)}")
            device.status.finish_operation = device.status.__class__.finish_operation.__get__(device.status)
            if mechanism == "event":
                waiter.close()
        # raw pyvisa on the event path: what the waiter wraps
        stamps = completion_clock(raw_dev)
        raw_inst.write("*CLS;*ESE 1;*SRE 32")
        raw_inst.enable_event(constants.EventType.service_request, constants.EventMechanism.queue)

        def raw_wait() -> None:
            raw_inst.wait_on_event(constants.EventType.service_request, 10000)
            raw_inst.read_stb()
            raw_inst.query("*ESR?")

        got = latencies(raw_wait, lambda o: raw_inst.write(f"{o};*OPC"), stamps, op, n)
        print(f"    {'raw pyvisa':10s} {describe(got)}  (wait_on_event + read_stb + *ESR?)")
        raw_inst.disable_event(constants.EventType.service_request, constants.EventMechanism.queue)
        raw_dev.status.finish_operation = raw_dev.status.__class__.finish_operation.__get__(raw_dev.status)
    sock.close()
    py.close()
    rm.close()


def bench_transactions(sim: Path, emulator: Emulator) -> None:
    import pyvisa

    print("Bus transactions while waiting for a 1 s operation")
    rm = resource_manager(sim, fresh=True)
    inst = rm.open_resource("GPIB0::2::INSTR", read_termination="\n", write_termination="\n")
    py = pyvisa.ResourceManager("@py")
    sock = py.open_resource(emulator.visa_resource, read_termination="\n", write_termination="\n", timeout=5000)
    for mechanism, resource in (("read_stb", inst), ("stb_query", sock)):
        events: list[dict[str, Any]] = []
        waiter = srq.arm(resource, emit=lambda _t, f, events=events: events.append(f))
        resource.write("OP1S;*OPC")
        waiter.wait(timeout=10)
        polls = events[-1]["polls"]
        print(f"  {mechanism:10s} {polls + 1:4d} transactions ({polls} polls + *ESR?) in {events[-1]['latency']:.3f} s")
    # naive: a status query every 10 ms until OPC
    sock.write("*CLS")
    sock.write("OP1S;*OPC")
    count = 0
    start = time.perf_counter()
    while True:
        count += 1
        if int(sock.query("*ESR?")) & 1:
            break
        time.sleep(0.01)
    print(f"  {'naive':10s} {count:4d} transactions (*ESR? every 10 ms) in {time.perf_counter() - start:.3f} s")
    sock.close()
    py.close()
    rm.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp) / "bench.yaml"
        sim.write_text(SIM, encoding="utf-8")
        with Emulator(sim, resource="GPIB0::1::INSTR") as emulator:
            bench_latency(sim, emulator, args.repeat)
            bench_transactions(sim, emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
