"""The lock backend interface, without stations: an in-memory backend, the host and VISA backends."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import filelock
import pytest

from pytest_litmus.errors import LitmusError, LockLost, NoSuchLock, ResourceInUse
from pytest_litmus.locks import (
    Hold,
    HostBackend,
    LockBackend,
    LockMode,
    LockOwner,
    LockState,
    LockUnsupported,
    ReleaseResult,
    VisaBackend,
    lock_key,
)

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"


class MemoryHold(Hold):
    def check(self) -> None:
        backend = self.backend
        assert isinstance(backend, MemoryBackend)
        if not self.released and self not in backend.held.get(self.resource, []):
            raise LockLost(self.resource, self.record.get("role") or None)


class MemoryBackend(LockBackend):
    """Locks in a dict: what a network backend (PostgreSQL advisory locks) implements, minus the network."""

    kind = "host"

    def __init__(self) -> None:
        self.held: dict[str, list[MemoryHold]] = {}
        self.mutex = threading.Lock()

    def _try_acquire(self, resource: str, mode: LockMode, record: dict[str, Any]) -> Hold | None:
        with self.mutex:
            holds = self.held.setdefault(resource, [])
            if holds and (mode == "exclusive" or holds[0].mode == "exclusive"):
                return None
            hold = MemoryHold(self, resource, mode, dict(record))
            holds.append(hold)
            return hold

    def _release(self, hold: Hold) -> None:
        with self.mutex:
            holds = self.held.get(hold.resource, [])
            if hold in holds:
                holds.remove(hold)

    def holders(self, resource: str) -> list[dict[str, Any]]:
        with self.mutex:
            return [h.record for h in self.held.get(resource, [])]

    def list(self) -> list[LockState]:
        with self.mutex:
            return [
                LockState(r, r, "held" if h else "free", [x.record for x in h], None, "memory")
                for r, h in sorted(self.held.items())
            ]

    def force_release(self, resource: str, *, only_stale: bool = False) -> ReleaseResult:
        with self.mutex:
            if resource not in self.held:
                raise NoSuchLock(resource, "memory")
            holders = [h.record for h in self.held.pop(resource)]
        if holders and only_stale:
            raise ResourceInUse(resource, holders[0])
        return ReleaseResult(resource, "broken" if holders else "cleaned", holders)


@pytest.fixture
def memory() -> MemoryBackend:
    return MemoryBackend()


def test_owners_on_any_backend_exclude_reenter_and_name_the_holder(memory: MemoryBackend, tmp_path: Path) -> None:
    first = LockOwner(tmp_path, session="a", station="bench", backend=memory)
    second = LockOwner(tmp_path, session="b", station="bench", backend=memory)
    lease = first.acquire(DMM, role="dmm", nodeid="t.py::x")
    assert first.acquire(DMM) is lease and lease.depth == 2 and lease.kind == "host"
    with pytest.raises(ResourceInUse) as info:
        second.acquire(DMM, timeout=0)
    holder = info.value.holder
    assert (holder["session"], holder["role"], holder["pid"], holder["nodeid"]) == ("a", "dmm", os.getpid(), "t.py::x")
    assert [s.state for s in memory.list()] == ["held"]
    first.release_all()
    assert second.acquire(DMM).held
    assert not (tmp_path / "locks").exists()  # nothing on disk: the backend decides where locks live
    second.release_all()
    assert memory.holders(DMM) == []


def test_shared_holders_share_and_exclude_exclusive(memory: MemoryBackend, tmp_path: Path) -> None:
    readers = [LockOwner(tmp_path, session=f"r{i}", backend=memory) for i in range(2)]
    for reader in readers:
        reader.acquire(DMM, mode="shared")
    with pytest.raises(ResourceInUse) as info:
        LockOwner(tmp_path, backend=memory).acquire(DMM)
    assert [h["session"] for h in info.value.holder["holders"]] == ["r0", "r1"]


def test_a_waiter_reports_contention_once_and_gets_the_freed_lock(memory: MemoryBackend, tmp_path: Path) -> None:
    holder = LockOwner(tmp_path, session="holder", backend=memory)
    holder.acquire(DMM)
    contended: list[Any] = []
    waiting = threading.Event()
    got: list[Any] = []

    def wait() -> None:
        def on_contended(who: Any) -> None:
            contended.append(who)
            waiting.set()

        waiter = LockOwner(tmp_path, session="waiter", backend=memory)
        got.append(waiter.acquire(DMM, timeout=None, on_contended=on_contended))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    holder.release_all()
    thread.join()
    assert [c["session"] for c in contended] == ["holder"]
    assert got[0].held and got[0].record["session"] == "waiter" and got[0].waited > 0


def test_forced_release_makes_the_holders_check_raise_lock_lost(memory: MemoryBackend, tmp_path: Path) -> None:
    lease = LockOwner(tmp_path, backend=memory).acquire(DMM, role="dmm")
    lease.check()
    result = memory.force_release(DMM)
    assert result.action == "broken"
    with pytest.raises(LockLost, match="dmm"):
        lease.check()


def test_timeouts_follow_pyvisa(memory: MemoryBackend, tmp_path: Path) -> None:
    owner = LockOwner(tmp_path, backend=memory)
    for bad in (-1, "1", True):
        with pytest.raises(ValueError):
            owner.acquire(DMM, timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        owner.acquire(DMM, mode="sometimes")  # type: ignore[arg-type]
    assert owner.acquire(DMM, mode="none").kind == "none" and memory.held == {}


# --------------------------------------------------------------------------- host backend


def test_host_backend_holds_report_their_record_and_check(tmp_path: Path) -> None:
    backend = HostBackend(tmp_path)
    hold = backend.acquire(DMM, "exclusive", 0, {"session": "s", "role": "dmm"})
    assert hold.record["key"] == lock_key(DMM) and hold.record["start"] is not None
    assert [h["session"] for h in backend.holders(DMM)] == ["s"]
    hold.check()
    hold.release()
    hold.release()  # idempotent
    assert backend.holders(DMM) == [] and [s.state for s in backend.list()] == ["free"]


def test_a_plain_filelock_contends_with_the_exclusive_host_lock(tmp_path: Path) -> None:
    lease = LockOwner(tmp_path).acquire(DMM)
    other = filelock.FileLock(str(lease.lock_path))
    with pytest.raises(filelock.Timeout):
        other.acquire(timeout=0)
    lease.release()
    with other.acquire(timeout=0), pytest.raises(ResourceInUse):
        LockOwner(tmp_path).acquire(DMM, timeout=0)


def test_without_fcntl_everything_imports_and_a_host_lock_says_why_not(tmp_path: Path) -> None:
    code = f"""
import sys
sys.modules["fcntl"] = None  # as on Windows
import pytest_litmus.plugin, pytest_litmus.locking, pytest_litmus.locks, pytest_litmus.sync
import pytest_litmus.follow, pytest_litmus.processes, pytest_litmus.server, pytest_litmus.cli.locks
from pytest_litmus.errors import LitmusError
from pytest_litmus.locks import LockOwner
try:
    LockOwner({str(tmp_path)!r}).acquire("GPIB0::1::INSTR")
except LitmusError as exc:
    print("refused:", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.startswith("refused: host instrument locks need a POSIX system")


def test_importing_the_lock_modules_does_not_import_psutil() -> None:
    code = (
        "import sys, pytest_litmus.plugin, pytest_litmus.locks, pytest_litmus.sync, pytest_litmus.follow;"
        " print('psutil' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- VISA backend


class FakeSession:
    resource_name = DMM

    def __init__(self) -> None:
        self.calls: list[str] = []

    def lock_excl(self, timeout: int) -> None:
        self.calls.append(f"lock_excl {timeout}")

    def lock(self, timeout: int, requested_key: str | None = None) -> str:
        self.calls.append(f"lock {timeout} {requested_key}")
        return requested_key or ""

    def unlock(self) -> None:
        self.calls.append("unlock")


def test_visa_backend_locks_the_session_and_says_it_cannot_list_or_break() -> None:
    session = FakeSession()
    backend = VisaBackend(session)
    with backend.acquire(DMM, "shared", None) as hold:
        assert hold.kind == "visa"
    assert session.calls == ["lock 4294967295 litmus", "unlock"]
    assert not backend.can_list and HostBackend.can_list
    for call in (backend.list, lambda: backend.holders(DMM), lambda: backend.force_release(DMM)):
        with pytest.raises(LockUnsupported, match="VISA cannot"):
            call()


def test_visa_backend_raises_lock_unsupported_where_the_library_takes_no_locks() -> None:
    class NoLocks(FakeSession):
        def lock_excl(self, timeout: int) -> None:
            raise NotImplementedError

    with pytest.raises(LockUnsupported) as info:
        VisaBackend(NoLocks()).acquire(DMM, "exclusive", 0)
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, LitmusError)


def test_a_backend_closes_at_the_end_of_a_with_block() -> None:
    closed: list[bool] = []

    class Counting(MemoryBackend):
        def close(self) -> None:
            closed.append(True)

    with Counting() as backend:
        backend.acquire("GPIB0::1::INSTR").release()
        assert closed == []
    assert closed == [True]
