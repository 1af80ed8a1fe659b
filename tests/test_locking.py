"""Host and VISA instrument locks, across real processes (``tests/lockhelpers``)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lockstress import run_stress

from pytest_litmus.errors import LockLost, ResourceInUse
from pytest_litmus.locking import (
    LockModeConflict,
    LockOwner,
    NoSuchLock,
    list_locks,
    lock_key,
    release_lock,
    release_visa_lock,
    take_visa_lock,
)
from pytest_litmus.locks import HostBackend

_spec = importlib.util.spec_from_file_location("lockprocs", Path(__file__).parent / "lockhelpers" / "procs.py")
assert _spec is not None and _spec.loader is not None
procs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(procs)

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"
PSU = "GPIB0::17::INSTR"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start holder children on ``tmp_path``; all are ended at teardown."""
    started: list[Any] = []

    def start(resource: str, *args: str, locked: bool = True) -> Any:
        child = procs.Child(tmp_path, resource, *args)
        started.append(child)
        if locked:
            child.expect("locked")
        return child

    yield start
    for child in started:
        child.close()


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[LockOwner]:
    with LockOwner(tmp_path, session="parent", station="cell-7") as own:
        yield own


# --------------------------------------------------------------------------- in one process


def test_lock_key_is_a_safe_file_name_and_follows_visa_aliases() -> None:
    key = lock_key("ASRL/dev/ttyUSB0::INSTR")
    assert "/" not in key and ".." not in key and key.startswith("ASRL_DEV_TTYUSB0_INSTR-")
    assert lock_key("GPIB::17") == lock_key("gpib0::17::instr") == lock_key(PSU)
    assert lock_key(PSU) != lock_key("GPIB0::18::INSTR")


def test_reentrant_within_an_owner_and_released_when_the_last_level_goes(owner: LockOwner, tmp_path: Path) -> None:
    lease = owner.acquire(PSU, role="psu")
    assert owner.acquire("GPIB::17", role="psu") is lease and lease.depth == 2
    owner.release(PSU)
    assert lease.held and list_locks(tmp_path)[0].state == "held"
    owner.release(PSU)
    assert not lease.held and owner.leases == []
    assert list_locks(tmp_path)[0].state == "free"


def test_release_all_goes_newest_first(owner: LockOwner, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = HostBackend._release
    monkeypatch.setattr(HostBackend, "_release", lambda self, hold: (order.append(hold.resource), real(self, hold))[1])
    owner.acquire(DMM)
    owner.acquire(PSU)
    owner.acquire(DMM)  # re-entry does not reorder
    owner.release_all()
    assert order == [PSU, DMM]


def test_two_owners_in_one_process_exclude_each_other(owner: LockOwner, tmp_path: Path) -> None:
    owner.acquire(DMM, role="dmm")
    with LockOwner(tmp_path, session="other") as other, pytest.raises(ResourceInUse) as info:
        other.acquire(DMM)
    assert info.value.holder["session"] == "parent" and info.value.holder["role"] == "dmm"
    assert info.value.waited < 1.0


def test_mode_none_takes_nothing(owner: LockOwner, tmp_path: Path) -> None:
    lease = owner.acquire(DMM, mode="none")
    lease.check()
    assert lease.kind == "none" and owner.leases == []
    assert not (tmp_path / "locks").exists()


def test_shared_holder_cannot_upgrade(owner: LockOwner) -> None:
    owner.acquire(DMM, mode="shared")
    assert owner.acquire(DMM, mode="shared").depth == 2
    with pytest.raises(LockModeConflict):
        owner.acquire(DMM, mode="exclusive")


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5"])
def test_bad_timeouts_are_refused(owner: LockOwner, timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        owner.acquire(DMM, timeout=timeout)


def test_forced_release_then_old_holder_release_keeps_exclusion(owner: LockOwner, tmp_path: Path) -> None:
    """The old holder releasing its (unlinked) lock must not free the new holder's."""
    old = owner.acquire(DMM)
    broken = release_lock(tmp_path, DMM, force=True)
    assert broken.action == "broken" and broken.holders[0]["session"] == "parent"
    with LockOwner(tmp_path, session="new") as new, LockOwner(tmp_path, session="third") as third:
        new.acquire(DMM)
        with pytest.raises(LockLost) as lost:
            old.check()
        assert lost.value.by["session"] == "new"
        owner.release_all()
        with pytest.raises(ResourceInUse) as info:
            third.acquire(DMM)
        assert info.value.holder["session"] == "new"


def test_release_of_unknown_lock(tmp_path: Path) -> None:
    with pytest.raises(NoSuchLock):
        release_lock(tmp_path, DMM)


# --------------------------------------------------------------------------- across processes


def test_second_process_gets_resource_in_use_naming_the_holder(spawn: Callable[..., Any]) -> None:
    holder = spawn(DMM, "--role", "dmm", "--session", "first")
    second = spawn(DMM, locked=False)
    refused = second.expect("in_use")
    assert refused["holder"]["pid"] == holder.pid
    assert refused["holder"]["role"] == "dmm" and refused["holder"]["session"] == "first"
    err = procs.unpickle(refused["error"])  # pickled in the child, rebuilt here
    assert isinstance(err, ResourceInUse) and err.resource == DMM and err.holder["pid"] == holder.pid
    assert f"pid {holder.pid}" in str(err)


def test_waiter_gets_the_lock_when_the_holder_releases(spawn: Callable[..., Any]) -> None:
    holder = spawn(DMM)
    waiter = spawn(DMM, "--timeout", "none", locked=False)
    assert waiter.expect("waiting")["holder"]["pid"] == holder.pid
    holder.send("release")
    holder.expect("released")
    assert waiter.expect("locked")["waited"] > 0


def test_sigkill_of_the_holder_frees_the_lock_for_a_waiter(spawn: Callable[..., Any], tmp_path: Path) -> None:
    holder = spawn(DMM)
    waiter = spawn(DMM, "--timeout", "none", locked=False)
    waiter.expect("waiting")
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait()
    assert waiter.expect("locked")["record"]["pid"] == waiter.pid
    [state] = list_locks(tmp_path)
    assert state.state == "held" and [h["pid"] for h in state.holders] == [waiter.pid]


def test_shared_holders_coexist_and_block_an_exclusive_request(spawn: Callable[..., Any], tmp_path: Path) -> None:
    readers = [spawn(DMM, "--mode", "shared") for _ in range(2)]
    refused = spawn(DMM, locked=False).expect("in_use")
    assert {h["pid"] for h in refused["holder"]["holders"]} == {r.pid for r in readers}
    [state] = list_locks(tmp_path)  # probing must not disturb the readers
    assert state.state == "held" and state.mode == "shared" and len(state.holders) == 2
    writer = spawn(DMM, "--timeout", "none", locked=False)
    writer.expect("waiting")
    for reader in readers:
        reader.send("release")
        reader.expect("released")
    writer.expect("locked")


def test_locks_are_per_resource(spawn: Callable[..., Any], owner: LockOwner) -> None:
    dmm_holder = spawn(DMM, "--role", "dmm")
    psu_holder = spawn(PSU, "--role", "psu")
    for resource, holder in ((DMM, dmm_holder), (PSU, psu_holder)):
        with pytest.raises(ResourceInUse) as info:
            owner.acquire(resource)
        assert info.value.holder["pid"] == holder.pid
    owner.acquire("GPIB0::18::INSTR")  # a third resource is free


def test_forced_release_is_noticed_by_check(spawn: Callable[..., Any], owner: LockOwner, tmp_path: Path) -> None:
    holder = spawn(DMM, "--role", "dmm")
    holder.send("check")
    holder.expect("ok")
    with pytest.raises(ResourceInUse):
        release_lock(tmp_path, DMM)  # alive: refused without force
    result = release_lock(tmp_path, DMM, force=True)
    assert result.action == "broken" and [h["pid"] for h in result.holders] == [holder.pid]
    owner.acquire(DMM, role="dmm")
    holder.send("check")
    lost = holder.expect("lost")
    assert lost["by"]["pid"] == os.getpid() and lost["by"]["session"] == "parent"
    err = procs.unpickle(lost["error"])
    assert isinstance(err, LockLost) and err.role == "dmm" and err.by["pid"] == os.getpid()


def test_dead_holder_is_stale_and_release_cleans_it(spawn: Callable[..., Any], tmp_path: Path) -> None:
    holder = spawn(DMM)
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait()
    [state] = list_locks(tmp_path)
    assert state.state == "stale" and state.holders[0]["pid"] == holder.pid
    result = release_lock(tmp_path, DMM)
    assert result.action == "cleaned" and result.holders[0]["pid"] == holder.pid
    assert list_locks(tmp_path) == []


def test_stress_no_overlap_and_no_deadlock(tmp_path: Path) -> None:
    workers, cycles = 8, 200
    lines = run_stress(tmp_path, DMM, workers, cycles)
    assert len(set(lines[::2])) == workers * cycles


# --------------------------------------------------------------------------- VISA locks


class FakeResource:
    """A duck-typed pyvisa resource whose lock calls fail with ``error`` (or succeed)."""

    resource_name = DMM

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, **kwargs: Any) -> str:
        self.calls.append((name, kwargs))
        if self.error is not None:
            raise self.error
        return "key"

    def lock_excl(self, timeout: int) -> None:
        self._call("lock_excl", timeout=timeout)

    def lock(self, timeout: int, requested_key: str | None = None) -> str:
        return self._call("lock", timeout=timeout, requested_key=requested_key)

    def unlock(self) -> None:
        self.calls.append(("unlock", {}))


def _visa_error(code_name: str) -> BaseException:
    from pyvisa import constants, errors

    return errors.VisaIOError(getattr(constants.StatusCode, code_name))


@pytest.mark.parametrize(
    "error", [NotImplementedError(), "error_nonsupported_operation"], ids=["NotImplementedError", "NSUP_OPER"]
)
def test_visa_lock_unsupported_falls_back_to_host(error: Any) -> None:
    fake = FakeResource(_visa_error(error) if isinstance(error, str) else error)
    assert take_visa_lock(fake, "exclusive", 2.5) == "host"
    assert fake.calls == [("lock_excl", {"timeout": 2500})]


def test_visa_lock_taken_exclusive_and_shared() -> None:
    fake = FakeResource()
    assert take_visa_lock(fake, "exclusive", None) == "visa"
    assert take_visa_lock(fake, "shared", 0) == "visa"
    release_visa_lock(fake, "visa")
    release_visa_lock(fake, "host")  # nothing to undo
    assert fake.calls == [
        ("lock_excl", {"timeout": 0xFFFFFFFF}),
        ("lock", {"timeout": 0, "requested_key": "litmus"}),
        ("unlock", {}),
    ]


def test_visa_lock_held_elsewhere_is_resource_in_use_and_other_errors_pass() -> None:
    with pytest.raises(ResourceInUse) as info:
        take_visa_lock(FakeResource(_visa_error("error_resource_locked")), "exclusive", 0)
    assert info.value.holder["kind"] == "visa"
    with pytest.raises(RuntimeError, match="boom"):
        take_visa_lock(FakeResource(RuntimeError("boom")), "exclusive", 0)


def test_lease_unlocks_visa_before_the_host_lock(owner: LockOwner, tmp_path: Path) -> None:
    fake = FakeResource()
    lease = owner.acquire(DMM)
    assert lease.take_visa(fake, 0) == "visa"
    assert list_locks(tmp_path)[0].holders[0]["kind"] == "visa"
    seen: list[str] = []
    fake.unlock = lambda: seen.append(list_locks(tmp_path)[0].state)  # type: ignore[method-assign]
    owner.release_all()
    assert seen == ["held"] and list_locks(tmp_path)[0].state == "free"


def test_refused_visa_lock_releases_the_host_lease(owner: LockOwner, tmp_path: Path) -> None:
    lease = owner.acquire(DMM)
    with pytest.raises(ResourceInUse):
        lease.take_visa(FakeResource(_visa_error("error_timeout")), 0)
    assert owner.leases == [] and list_locks(tmp_path)[0].state == "free"


def test_releasing_a_stale_lease_leaves_the_new_one_alone(owner: LockOwner) -> None:
    old = owner.acquire(DMM)
    old.release()
    new = owner.acquire(DMM)
    old.release()
    assert new.held and owner.leases == [new]


def test_errors_pickle() -> None:
    err = LockLost(DMM, "dmm", {"pid": 1, "host": "h"})
    back = pickle.loads(pickle.dumps(err))
    assert (back.resource, back.role, back.by, str(back)) == (DMM, "dmm", {"pid": 1, "host": "h"}, str(err))
