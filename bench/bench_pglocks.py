"""PostgreSQL lock costs: acquire+release, ``Hold.check()``, and how soon a waiter gets a freed lock.

    python bench/bench_pglocks.py [--url postgresql://...] [--rounds N] [--n N]

Targets (issue 13), on loopback: acquire+release at most 2 ms; a waiter in another
process gets the lock at most 20 ms after its holder releases it, and at most 1 s
after the holder is SIGKILLed. Without ``--url`` a throw-away cluster is started as
the tests start one (tests/pgserver.py: Debian's postgresql package; fsync off, which
does not matter here: the holder table is unlogged). The raw ``pg_try_advisory_lock``
+ ``pg_advisory_unlock`` on one psycopg connection is printed as the baseline the
lock wraps. Hand-off times use ``time.monotonic()``, one clock for every process on
Linux, so the holder's release time and the waiter's acquire time compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockbench import handoff_ms, samples_us, start_holder

from pytest_litmus.locks import LockOwner, PostgresBackend

RESOURCE = "TCPIP0::192.168.1.50::inst0::INSTR"
HOLDER = """
import sys, time
from pytest_litmus.locks import PostgresBackend
backend = PostgresBackend(sys.argv[1])
hold = backend.acquire(sys.argv[2], holder={"session": "bench-holder"})
print("locked", flush=True)
sys.stdin.readline()
released = time.monotonic()
hold.release()
print(released, flush=True)
sys.stdin.readline()
"""


def describe(found: list[float]) -> str:
    ordered = sorted(found)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"median {statistics.median(found) / 1000:6.3f} ms  p99 {p99 / 1000:6.3f} ms"


def bench_uncontended(url: str, n: int) -> None:
    import psycopg

    owner = LockOwner(Path("."), session="bench", backend=PostgresBackend(url))
    lease = owner.acquire("GPIB0::1::INSTR")
    check = samples_us(lease.check, n * 10, warmup=100)
    owner.release_all()

    def cycle() -> None:
        owner.acquire(RESOURCE)
        owner.release(RESOURCE)

    raw_conn = psycopg.connect(url, autocommit=True)

    def raw() -> None:
        raw_conn.execute("SELECT pg_try_advisory_lock(42)")
        raw_conn.execute("SELECT pg_advisory_unlock(42)")

    locked, bare = samples_us(cycle, n, warmup=100), samples_us(raw, n, warmup=100)  # psycopg prepares
    print(f"acquire+release (LockOwner)   {describe(locked)}  (target <= 2 ms)")
    print(
        f"  raw try_lock + unlock       {describe(bare)}  (ratio {statistics.median(locked) / statistics.median(bare):.1f}x)"
    )
    print(f"Hold.check()                  median {statistics.median(check):6.2f} us (no round trip)")
    owner.close()
    raw_conn.close()


def handoff(url: str, *, kill: bool) -> float:
    """Milliseconds from the holder's release (or SIGKILL) to a waiter in this process holding the lock."""
    holder = start_holder(HOLDER, url, RESOURCE)
    backend = PostgresBackend(url)
    holds = []

    def acquire(contended: Callable[[Any], None]) -> None:
        holds.append(backend.acquire(RESOURCE, timeout=None, on_contended=contended))

    try:  # the settle puts the waiter in the server's queue, not between its try and its wait
        return handoff_ms(holder, acquire, kill=kill, settle=lambda: 0.05)
    finally:
        for hold in holds:
            hold.release()
        backend.close()


def bench_handoff(url: str, rounds: int) -> None:
    for kill, target in ((False, "20 ms"), (True, "1 s")):
        found = [handoff(url, kill=kill) for _ in range(rounds)]
        what = "SIGKILL" if kill else "release"
        print(
            f"waiter gets the lock after {what:7}  median {statistics.median(found):5.2f} ms"
            f"  max {max(found):5.2f} ms  over {rounds}  (target <= {target})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="a PostgreSQL server to use (default: a throw-away cluster)")
    parser.add_argument("--rounds", type=int, default=20, help="hand-off rounds per case (20)")
    parser.add_argument("--n", type=int, default=2000, help="uncontended cycles (2000)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    cluster = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pgserver import Cluster

        cluster = Cluster()
        url = cluster.database("bench")
    try:
        bench_uncontended(url, args.n)
        bench_handoff(url, args.rounds)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
