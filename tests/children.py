"""Ending a test's child processes: reaped, and their pipes closed (not left to the garbage collector)."""

from __future__ import annotations

import subprocess

PATIENCE = 30


def end(proc: subprocess.Popen[str] | subprocess.Popen[bytes], *, kill: bool = True) -> int:
    """Kill ``proc`` if it still runs (``kill=False``: wait for it, and kill it if it hangs), reap it,
    close its pipes; its exit code."""
    try:
        if kill and proc.poll() is None:
            proc.kill()
        try:
            return proc.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:  # the test fails, and leaves no process behind
            proc.kill()
            proc.wait()
            raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:  # stdin's buffered rest, to a process that is gone
                    pass
