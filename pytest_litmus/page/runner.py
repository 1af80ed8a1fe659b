"""The Start and Stop buttons: one test run at a time per station, as a subprocess.

The command (``page: {command: ...}`` in ``litmus.yaml``, default
:data:`DEFAULT_COMMAND`) is split with :func:`shlex.split` first and each
argument formatted after, so a serial is always one argument of its own and
never reaches a shell. The run gets a process group of its own; Stop sends it
SIGINT (pytest ends the session ``terminated``), then SIGTERM and SIGKILL if it
is still there after a grace period. Across page processes a lock file under
``<data_dir>/page/`` keeps a second run of the same station from starting.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import make_dirs
from pytest_litmus.dut import MAX_SERIAL
from pytest_litmus.dut import check_serial as dut_serial
from pytest_litmus.errors import RunInProgress, SerialRefused

__all__ = ["DEFAULT_COMMAND", "MAX_SERIAL", "Run", "RunController", "check_serial", "command_argv"]

#: What Start runs when ``litmus.yaml`` names no ``page: {command: ...}``.
DEFAULT_COMMAND = "pytest --station {station} --dut {serial}"
#: Seconds from SIGINT to SIGTERM, and from SIGTERM to SIGKILL.
GRACE = 10.0
#: Lines of the run's output kept to show when it ends without a session.
OUTPUT_LINES = 40
_PLAIN = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")
_ONE_WORD = f"one word of 1 to {MAX_SERIAL} printable characters, no commas, not starting with '-'"


def check_serial(serial: object, pattern: re.Pattern[str] | None, where: str | None = None) -> str:
    """``serial`` if the page may run it: a serial ``--dut`` takes (:func:`pytest_litmus.dut.check_serial`:
    text, at most :data:`MAX_SERIAL` characters, no control characters or commas) that is also one word,
    not an option, and with ``pattern``, matching it whole; else :class:`SerialRefused`."""
    if not isinstance(serial, str):
        raise SerialRefused(repr(serial)[:MAX_SERIAL], "a text")
    try:
        checked = dut_serial(serial)
    except ValueError:
        checked = None
    if checked is None or _PLAIN.fullmatch(checked) is None or checked.startswith("-"):
        raise SerialRefused(serial.strip()[:MAX_SERIAL], _ONE_WORD)
    if pattern is not None and pattern.fullmatch(checked) is None:
        raise SerialRefused(checked, f"a serial number matching dut_pattern {pattern.pattern!r} of {where}")
    return checked


def command_argv(command: str, *, serial: str, station: str) -> list[str]:
    """The run's argv: ``command`` split like a shell would, then ``{serial}``/``{station}`` put in each argument."""
    return [part.format(serial=serial, station=station) for part in shlex.split(command)]


@dataclass
class Run:
    """One run the page started: what, since when, and how it ended (``returncode`` None: running)."""

    serial: str
    argv: list[str]
    pid: int
    started: float
    returncode: int | None = None
    ended: float | None = None
    stopping: bool = False
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "argv": self.argv,
            "pid": self.pid,
            "started": self.started,
            "running": self.returncode is None,
            "stopping": self.stopping,
            "returncode": self.returncode,
            "ended": self.ended,
            "output": list(self.output) if self.returncode is not None else [],
        }


class RunController:
    """Starts the station's runs (one at a time) and stops them cleanly."""

    def __init__(
        self,
        station: str,
        command: str,
        *,
        data_dir: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        grace: float = GRACE,
    ) -> None:
        self.station = station
        self.command = command
        self.cwd = cwd
        # The command's programs (pytest) are looked for beside this Python first: the page's own environment.
        self.env = dict(os.environ if env is None else env)
        self.env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), self.env.get("PATH")) if p)
        self.grace = grace
        self.data_dir = data_dir
        self.run: Run | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._station_lock: Any = None
        #: Set whenever a run starts or ends (the page's state is pushed again).
        self.changed = threading.Event()

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.returncode is None

    def start(self, serial: str) -> Run:
        """Run the command for ``serial`` (checked by the caller); :class:`RunInProgress` if one is running."""
        import filelock

        argv = command_argv(self.command, serial=serial, station=self.station)
        with self._lock:
            if self.running:
                assert self.run is not None
                raise RunInProgress(self.station, self.run.serial, self.run.pid)
            lock_dir = self.data_dir / "page"
            make_dirs(lock_dir)
            # not thread-local: the reaper thread releases it (filelock < 3.30 would silently keep it)
            station_lock = filelock.FileLock(str(lock_dir / f"{self.station}.run.lock"), timeout=0, thread_local=False)
            try:
                station_lock.acquire()
            except filelock.Timeout:
                raise RunInProgress(self.station, None, None) from None
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError:
                station_lock.release()
                raise
            self._station_lock = station_lock
            self._process = process
            self.run = Run(serial=serial, argv=argv, pid=process.pid, started=time.time())
            threading.Thread(target=self._reap, args=(process, self.run), name="litmus-page-run", daemon=True).start()
        self.changed.set()
        return self.run

    def _reap(self, process: subprocess.Popen[bytes], run: Run) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            run.output.append(raw.decode("utf-8", "replace").rstrip("\n"))
        process.stdout.close()
        code = process.wait()
        with self._lock:
            run.returncode, run.ended = code, time.time()
            if self._station_lock is not None:
                self._station_lock.release()
                self._station_lock = None
        self.changed.set()

    def stop(self) -> Run | None:
        """End the running run cleanly: SIGINT to its process group, escalating after the grace period."""
        with self._lock:
            process, run = self._process, self.run
            if process is None or run is None or run.returncode is not None or run.stopping:
                return run
            run.stopping = True
        self.changed.set()
        threading.Thread(target=self._escalate, args=(process,), name="litmus-page-stop", daemon=True).start()
        return run

    def _escalate(self, process: subprocess.Popen[bytes]) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=self.grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        """Stop a running run and wait for it (the page is shutting down)."""
        process = self._process
        self.stop()
        if process is not None:
            try:
                process.wait(timeout=3 * self.grace)
            except subprocess.TimeoutExpired:
                pass
