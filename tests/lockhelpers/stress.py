"""One stress worker: N acquire/use/release cycles, marking each with a begin and an end line.

python stress.py DATA_DIR RESOURCE MARKS_FILE N [LOCKS_URL]
"""

from __future__ import annotations

import os
import sys

from pytest_litmus.locks import LockOwner


def main() -> int:
    data_dir, resource, marks, cycles = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pid = os.getpid()
    fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    owner = LockOwner(data_dir, session=f"stress-{pid}")
    if len(sys.argv) > 5:  # a lock server instead of host lock files
        from pytest_litmus.locks import PostgresBackend

        owner.backend = PostgresBackend(sys.argv[5])
    with owner:
        for i in range(cycles):
            with owner.acquire(resource, timeout=None) as lease:
                os.write(fd, f"B {pid} {i}\n".encode())
                os.sched_yield()  # give a would-be intruder its chance to interleave
                lease.check()
                os.write(fd, f"E {pid} {i}\n".encode())
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
