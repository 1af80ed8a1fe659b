"""One simulated instrument per resource: across resource managers of a process, and its locks across processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from children import end
from pyvisa import constants
from pyvisa.errors import VisaIOError

from pytest_litmus.errors import AccessDenied
from pytest_litmus.sim import resource_manager
from tests.sim.conftest import DMM_SIM, LAN

Status = constants.StatusCode
Modes = constants.AccessModes


def open_dmm(rm: Any) -> Any:
    return rm.open_resource(LAN, read_termination="\n", write_termination="\n", timeout=2000)


def error_code(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(VisaIOError) as info:
        call(*args, **kwargs)
    return int(info.value.error_code)


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``dmm.yaml`` of this test's own: its current simulator and lock files are this test's alone.

    The lock directory is under ``tmp_path`` too, for this process and the agents it starts (``TMPDIR``).
    """
    path = tmp_path / "dmm.yaml"
    shutil.copy(DMM_SIM, path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    return path


# -- one process -------------------------------------------------------------------------


def test_two_resource_managers_share_one_instrument(sim: Path) -> None:
    first, second = resource_manager(sim), resource_manager(sim)
    assert first is not second and first.visalib is second.visalib
    a, b = open_dmm(first), open_dmm(second)
    a.write("*ESE 36")
    assert b.query("*ESE?") == "36"
    a.lock_excl(timeout=0)
    assert (a.lock_state, b.lock_state) == (Modes.exclusive_lock, Modes.exclusive_lock)
    assert error_code(b.lock_excl, timeout=0) == Status.error_resource_locked
    assert error_code(b.query, "*IDN?") == Status.error_resource_locked
    a.unlock()
    assert b.lock_state == Modes.no_lock
    b.lock(timeout=0, requested_key="k")
    assert a.lock_state == Modes.shared_lock
    second.close()  # closes second's sessions (and releases b's lock), not first's
    assert a.lock_state == Modes.no_lock
    assert a.query("*IDN?").startswith("LITMUS")
    first.close()


def test_the_seam_and_resource_manager_join_the_current_simulator(sim: Path) -> None:
    from pytest_litmus.visa import open_resource_manager

    holder = open_resource_manager(None, simulation=sim)  # what a pytest session / connect() holder builds
    mine = resource_manager(sim)
    assert mine.visalib is holder.visalib
    open_dmm(holder).write("*SRE 16")
    assert open_dmm(mine).query("*SRE?") == "16"
    again = open_resource_manager(f"{sim}@sim")  # a new holder starts fresh, and is joined from now on
    assert again.visalib is not holder.visalib and resource_manager(sim).visalib is again.visalib
    assert open_dmm(again).query("*SRE?") == "0"
    for manager in (holder, mine, again):
        manager.close()


def test_fresh_gives_an_independent_instrument(sim: Path) -> None:
    old = open_dmm(resource_manager(sim))
    old.write("*ESE 36")
    new_rm = resource_manager(sim, fresh=True)
    new = open_dmm(new_rm)
    assert new.query("*ESE?") == "0"
    new.write("*ESE 4")
    assert old.query("*ESE?") == "36"
    assert open_dmm(resource_manager(sim)).query("*ESE?") == "4", "fresh=True made the new one current"
    old.lock_excl(timeout=0)  # another instrument of the same resource on this computer: VISA locks still hold
    assert new.lock_state == Modes.exclusive_lock
    assert error_code(new.lock_excl, timeout=0) == Status.error_resource_locked
    old.close()
    new.lock_excl(timeout=0)
    new_rm.close()


def test_the_bundled_default_is_shared_too() -> None:
    first, second = resource_manager(fresh=True), resource_manager()
    assert first.visalib is second.visalib
    first.close()
    second.close()


def test_a_mock_session_is_joined_and_the_next_session_starts_fresh(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        test_joined="""
        import pytest_litmus.sim

        def test_joined(dmm):
            assert dmm.query("*ESE?") == "0", "each pytest session starts fresh"
            dmm.write("*ESE 36")
            rm = pytest_litmus.sim.resource_manager("stations/sims/cell-7.yaml")
            mine = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR", read_termination="\\n",
                                    write_termination="\\n")
            assert mine.query("*ESE?") == "36"
            mine.write("*SRE 16")
            rm.close()
            assert dmm.query("*SRE?") == "16", "the session's instrument, still open"
        """
    )
    for _ in range(2):
        station_project.runpytest("--station", "cell-7", "--mock", "-p", "no:cacheprovider").assert_outcomes(passed=1)


# -- the lock directory ------------------------------------------------------------------


def test_a_symlinked_lock_directory_is_refused(tmp_path: Path, sim: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / f"litmus-sim-{os.getuid()}")
    rm = resource_manager(sim, fresh=True)
    dmm = open_dmm(rm)
    with pytest.raises(AccessDenied) as info:
        dmm.lock_excl(timeout=0)
    assert "symlink" in str(info.value) and info.value.path.endswith(f"litmus-sim-{os.getuid()}")
    assert not list((tmp_path / "elsewhere").iterdir())
    rm.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_another_users_lock_directory_is_refused(tmp_path: Path, sim: Path) -> None:
    theirs = tmp_path / f"litmus-sim-{os.getuid()}"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 4242, 4242)
    rm = resource_manager(sim, fresh=True)
    with pytest.raises(AccessDenied) as info:
        open_dmm(rm).lock(timeout=0, requested_key="k")
    assert "not yours" in str(info.value)
    rm.close()


def test_the_lock_directory_is_private(tmp_path: Path, sim: Path) -> None:
    rm = resource_manager(sim, fresh=True)
    open_dmm(rm).lock_excl(timeout=0)
    directory = tmp_path / f"litmus-sim-{os.getuid()}"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all(entry.stat().st_mode & 0o077 == 0 for entry in directory.iterdir())
    rm.close()


# -- across processes ----------------------------------------------------------------------

AGENT = r"""
import sys
from pyvisa.errors import VisaIOError
import pytest_litmus.sim

rm = pytest_litmus.sim.resource_manager(sys.argv[1])
inst = rm.open_resource(sys.argv[2], read_termination="\n", write_termination="\n", timeout=2000)
print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    timeout = None if args[:1] == ["forever"] else int(args[0]) if command in ("excl", "shared") else 0
    try:
        if command == "excl":
            inst.lock_excl(timeout=timeout)
            answer = "ok"
        elif command == "shared":
            answer = inst.lock(timeout=timeout, requested_key=args[1] if len(args) > 1 else None)
        elif command == "unlock":
            inst.unlock()
            answer = "ok"
        elif command == "state":
            answer = int(inst.lock_state)
        elif command == "query":
            answer = inst.query(args[0])
        elif command == "close":
            rm.close()
            answer = "closed"
    except VisaIOError as exc:
        answer = exc.abbreviation
    print(answer, flush=True)
"""


class Agent:
    """A process with one session on the resource, driven line by line over pipes."""

    def __init__(self, sim: Path, resource: str = LAN) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(sim), resource],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.read() == "ready"

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __call__(self, command: str) -> str:
        self.send(command)
        return self.read()

    def stop(self) -> None:
        end(self.proc)


@pytest.fixture
def agents(sim: Path) -> Iterator[Any]:
    started: list[Agent] = []

    def start() -> Agent:
        started.append(Agent(sim))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


def test_another_process_cannot_lock_at_once_what_one_holds(agents: Any) -> None:
    a, b = agents(), agents()
    assert a("excl 0") == "ok"
    assert b("state") == str(int(Modes.exclusive_lock))
    assert b("excl 0") == "VI_ERROR_RSRC_LOCKED"
    assert b("shared 0 k") == "VI_ERROR_RSRC_LOCKED"
    assert b("excl 20") == "VI_ERROR_TMO", "a positive timeout waits, then times out"
    assert a("unlock") == "ok"
    assert b("state") == str(int(Modes.no_lock))
    assert b("excl 0") == "ok"
    assert a("excl 0") == "VI_ERROR_RSRC_LOCKED"


def test_a_waiting_process_gets_the_lock_when_the_holder_unlocks(agents: Any) -> None:
    a, b = agents(), agents()
    assert a("excl 0") == "ok"
    b.send("excl 60000")  # B waits: its answer comes only after A unlocks
    assert a("unlock") == "ok"
    assert b.read() == "ok"
    assert a("excl 0") == "VI_ERROR_RSRC_LOCKED"


def test_a_process_waiting_forever_gets_the_lock_on_close(agents: Any) -> None:
    a, b = agents(), agents()
    assert a("excl 0") == "ok"
    assert b("excl 0") == "VI_ERROR_RSRC_LOCKED"
    b.send("excl forever")
    assert a("close") == "closed"
    assert b.read() == "ok"


def test_a_killed_holders_lock_is_released(agents: Any) -> None:
    a, b = agents(), agents()
    assert a("shared 0 k") == "k"
    assert a("excl 0") == "ok"  # its shared lock turned exclusive
    assert b("shared 0 k") == "VI_ERROR_RSRC_LOCKED"
    a.proc.kill()
    a.proc.wait(timeout=30)
    assert b("excl 0") == "ok"


def test_two_processes_with_one_key_share_and_keep_others_out(agents: Any) -> None:
    a, b, c = agents(), agents(), agents()
    assert a("shared 0 monitor_group") == "monitor_group"
    assert b("shared 0 monitor_group") == "monitor_group"
    assert c("state") == str(int(Modes.shared_lock))
    assert c("shared 0 other") == "VI_ERROR_RSRC_LOCKED"
    assert c("excl 0") == "VI_ERROR_RSRC_LOCKED"
    assert a("unlock") == "ok"
    assert c("shared 0 other") == "VI_ERROR_RSRC_LOCKED", "b still holds monitor_group"
    c.send("excl 60000")
    assert b("unlock") == "ok"
    assert c.read() == "ok"
    assert a("shared 0 monitor_group") == "VI_ERROR_RSRC_LOCKED"


def test_a_generated_key_is_unique_on_the_host(agents: Any) -> None:
    a, b = agents(), agents()
    key_a = a("shared 0 -")  # "-" is a key like any other; then a key-less shared lock of each process
    assert key_a == "-" and a("unlock") == "ok"
    a.send("shared 0")
    b.send("shared 0")
    answers = {a.read(), b.read()}
    assert "VI_ERROR_RSRC_LOCKED" in answers, "two processes' generated keys must differ"


def test_io_of_a_process_without_a_lock_is_not_refused(agents: Any) -> None:
    """A deliberate deviation: the per-call I/O path is not slowed by a host check; each process has its own
    instrument state (the emulator's front doors share one)."""
    a, b = agents(), agents()
    assert a("excl 0") == "ok"
    assert b("state") == str(int(Modes.exclusive_lock))
    assert b("query *IDN?").startswith("LITMUS")
