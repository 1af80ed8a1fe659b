"""VISA locks in the simulator: two sessions, two threads (the seed snippets are in ``test_seeds.py``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from tests.sim.conftest import LAN

Status = constants.StatusCode


def open_dmm(rm: Any) -> Any:
    return rm.open_resource(LAN, read_termination="\n", write_termination="\n")


def error_code(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(VisaIOError) as info:
        call(*args, **kwargs)
    return int(info.value.error_code)


# -- the seed snippets, with only the resource manager changed ---------------------


def test_seed_lock_context_releases_even_on_error(rm: Any) -> None:
    dmm, other = open_dmm(rm), open_dmm(rm)
    with pytest.raises(RuntimeError), dmm.lock_context(timeout=5000):
        dmm.write("CONF:VOLT:DC")
        float(dmm.query("READ?"))
        assert error_code(other.query, "*IDN?") == Status.error_resource_locked
        raise RuntimeError("test body failed")
    assert other.query("*IDN?").startswith("LITMUS")


def test_seed_shared_lock_lets_the_key_holders_in(rm: Any) -> None:
    monitor, script_b, outsider = open_dmm(rm), open_dmm(rm), open_dmm(rm)
    with monitor.lock_context(timeout=5000, requested_key="monitor_group") as key:
        assert key == "monitor_group"
        with script_b.lock_context(timeout=5000, requested_key="monitor_group"):
            assert monitor.query("*IDN?").startswith("LITMUS")
            assert script_b.query("SYST:ERR?") == '0,"No error"'
            assert monitor.read_stb() == 0
            assert error_code(outsider.query, "*IDN?") == Status.error_resource_locked
            assert error_code(outsider.lock_excl, timeout=0) == Status.error_resource_locked
            assert error_code(outsider.lock, timeout=0, requested_key="other") == Status.error_resource_locked
    outsider.lock_excl(timeout=0)
    outsider.unlock()


def test_shared_lock_without_key_generates_one_to_pass_on(rm: Any) -> None:
    first, second = open_dmm(rm), open_dmm(rm)
    key = first.lock()
    assert key
    assert second.lock(timeout=0, requested_key=key) == key
    first.unlock()
    second.unlock()


# -- semantics ---------------------------------------------------------------------


def test_lock_waits_out_its_timeout_then_reports_vi_error_tmo(rm: Any) -> None:
    holder, waiter = open_dmm(rm), open_dmm(rm)
    holder.lock_excl()
    assert error_code(waiter.lock_excl, timeout=0) == Status.error_resource_locked
    assert error_code(waiter.lock_excl, timeout=5) == Status.error_timeout


def test_locks_nest_and_each_needs_its_unlock(rm: Any) -> None:
    dmm, other = open_dmm(rm), open_dmm(rm)
    dmm.lock_excl()
    dmm.lock_excl()
    assert dmm.last_status == Status.success_nested_exclusive
    dmm.unlock()
    assert error_code(other.query, "*IDN?") == Status.error_resource_locked
    dmm.unlock()
    assert other.query("*IDN?")
    assert error_code(dmm.unlock) == Status.error_session_not_locked


def test_closing_a_session_releases_its_locks(rm: Any) -> None:
    dmm, other = open_dmm(rm), open_dmm(rm)
    dmm.lock_excl()
    dmm.close()
    other.lock_excl(timeout=0)


def test_exclusive_waits_for_shared_holders(rm: Any) -> None:
    reader, writer = open_dmm(rm), open_dmm(rm)
    reader.lock(requested_key="k")
    assert error_code(writer.lock_excl, timeout=0) == Status.error_resource_locked
    reader.unlock()
    writer.lock_excl(timeout=0)


def test_open_with_an_exclusive_access_mode_locks(rm: Any) -> None:
    owner = rm.open_resource(LAN, access_mode=constants.AccessModes.exclusive_lock)
    with pytest.raises(VisaIOError) as info:
        rm.open_resource(LAN, access_mode=constants.AccessModes.exclusive_lock, open_timeout=0)
    assert info.value.error_code == Status.error_resource_locked
    owner.close()


def test_a_thread_blocks_on_the_lock_until_the_holder_releases(rm: Any) -> None:
    holder, contender = open_dmm(rm), open_dmm(rm)
    holder.lock_excl()
    order: list[str] = []
    failed_at_once: list[int] = []

    def contend() -> None:
        try:
            contender.lock_excl(timeout=0)
        except VisaIOError as exc:
            failed_at_once.append(exc.error_code)
        contender.lock_excl(timeout=None)  # VI_TMO_INFINITE
        order.append("contender locked")
        contender.unlock()

    thread = threading.Thread(target=contend)
    thread.start()
    holder.query("*IDN?")
    order.append("holder unlocks")
    holder.unlock()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert failed_at_once == [Status.error_resource_locked]
    assert order == ["holder unlocks", "contender locked"]


def test_last_status_follows_each_call(rm: Any) -> None:
    """A refused write leaves ``last_status`` at the error; the next successful one puts it back."""
    dmm, other = open_dmm(rm), open_dmm(rm)
    dmm.lock_excl(timeout=0)
    assert error_code(other.write, "*CLS") == Status.error_resource_locked
    assert other.last_status == Status.error_resource_locked
    dmm.unlock()
    other.write("*CLS")
    assert other.last_status == Status.success
    assert rm.visalib.last_status == Status.success
