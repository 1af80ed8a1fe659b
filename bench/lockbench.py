"""What the lock benchmarks share: timing a call, a holder process, and timing a hand-off.

Used by ``bench_locks.py`` (host flock) and ``bench_pglocks.py`` (PostgreSQL), which
run as scripts from this folder. Hand-off times use ``time.monotonic()``, one clock
for every process on Linux, so the holder's release time and the waiter's acquire
time compare.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def samples_us(fn: Callable[[], None], n: int, warmup: int) -> list[float]:
    """``n`` timings of ``fn()`` in microseconds, after ``min(n, warmup)`` untimed calls."""
    for _ in range(min(n, warmup)):
        fn()
    found = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        found.append((time.perf_counter() - start) * 1e6)
    return found


def start_holder(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a new interpreter with ``args``; returns once it printed ``locked``.

    The holder then waits for a line on stdin, prints ``time.monotonic()`` and frees the lock.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def handoff_ms(
    holder: subprocess.Popen[str],
    acquire: Callable[[Callable[[Any], None]], object],
    *,
    kill: bool,
    settle: Callable[[], float],
) -> float:
    """Milliseconds from ``holder`` freeing its lock (a ``release`` line, or SIGKILL) to ``acquire`` returning.

    ``acquire(on_contended)`` runs in a thread and blocks until it holds the lock;
    once it is waiting, the holder is freed after ``settle()`` seconds. The holder
    process is killed and reaped at the end.
    """
    waiting, acquired = threading.Event(), [0.0]

    def wait() -> None:
        acquire(lambda holder: waiting.set())
        acquired[0] = time.monotonic()

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    time.sleep(settle())
    assert holder.stdin is not None and holder.stdout is not None
    if kill:
        freed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
    else:
        holder.stdin.write("release\n")
        holder.stdin.flush()
        freed = float(holder.stdout.readline())
    thread.join()
    holder.kill()
    holder.wait()
    return (acquired[0] - freed) * 1000
