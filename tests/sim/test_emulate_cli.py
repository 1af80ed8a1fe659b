"""``litmus emulate`` as a supervisor runs it: start, read the ready line, stop with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.sim.conftest import DMM_SIM, GPIB


def test_sigterm_right_after_the_ready_line_is_a_clean_stop() -> None:
    """The handler is installed before the ready line, so a prompt SIGTERM exits 0, not -15."""
    for _ in range(5):  # the race it guards against is narrow: try it a few times
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_litmus.cli", "emulate", str(DMM_SIM), "--resource", GPIB],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert ready.startswith("TCPIP0::127.0.0.1::"), (ready, err)
        assert proc.returncode == 0, err
