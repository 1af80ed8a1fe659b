"""The instrument proxy: serialised per instrument, timed, recorded; drivers."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus.drivers import Dmm, PowerSupply, ScpiInstrument
from pytest_litmus.errors import InstrumentError
from pytest_litmus.events import EventFile, Recorder, read_events
from pytest_litmus.hooks import LitmusPluginManager
from pytest_litmus.instruments import InstrumentProxy


class UnsafeResource:
    """A resource like a PyVISA session: a query is a write then a read, with no lock.

    ``inside`` counts callers between the write and the read; ``overlaps`` how
    often a second caller got in (which on a real bus swaps answers).
    """

    resource_name = "FAKE::1::INSTR"

    def __init__(self) -> None:
        self.pending = ""
        self.inside = 0
        self.overlaps = 0

    def query(self, command: str) -> str:
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        self.pending = command
        time.sleep(0)  # release the GIL between write and read, as bus I/O does
        answer = f"answer to {self.pending}"
        self.inside -= 1
        return answer

    def write(self, command: str) -> None:
        self.pending = command

    def close(self) -> None:
        pass


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder("s-1", EventFile(tmp_path / "events.jsonl"), LitmusPluginManager())
    yield rec
    rec.close()


def hammer(call: Any, commands: list[str], n: int) -> list[tuple[str, str]]:
    wrong: list[tuple[str, str]] = []
    start = threading.Barrier(len(commands))

    def worker(cmd: str) -> None:
        start.wait()
        for _ in range(n):
            answer = call(cmd)
            if answer != f"answer to {cmd}":
                wrong.append((cmd, answer))

    threads = [threading.Thread(target=worker, args=(c,)) for c in commands]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_without_the_proxy_two_threads_interleave(fast_switching: None) -> None:
    """The control: the hazard the proxy exists for is real in this setup."""
    resource = UnsafeResource()
    wrong = hammer(ScpiInstrument(resource).query, ["A?", "B?"], 3000)
    assert resource.overlaps > 0 and wrong


def test_the_proxy_lock_prevents_interleaved_answers(recorder: Recorder, fast_switching: None) -> None:
    resource = UnsafeResource()
    proxy = InstrumentProxy(ScpiInstrument(resource), role="dmm", resource="FAKE::1::INSTR", recorder=recorder)
    wrong = hammer(proxy.query, ["A?", "B?"], 3000)
    assert resource.overlaps == 0 and wrong == []
    calls = read_events(recorder.writer.path)
    assert len(calls) == 6000 and {c["method"] for c in calls} == {"query"}
    assert [c["seq"] for c in calls] == list(range(1, 6001))


def test_each_call_is_recorded_with_result_error_duration_and_test(recorder: Recorder) -> None:
    resource = UnsafeResource()
    proxy = InstrumentProxy(ScpiInstrument(resource), role="dmm", resource="FAKE::1::INSTR", recorder=recorder)
    recorder.nodeid = "tests/test_x.py::test_y"
    assert proxy.query("MEAS?") == "answer to MEAS?"
    recorder.nodeid = None
    with pytest.raises(InstrumentError):
        proxy.query_float("MEAS?")
    first, second = read_events(recorder.writer.path)
    assert first["type"] == "InstrumentCall" and first["role"] == "dmm" and first["method"] == "query"
    assert first["args"] == ["MEAS?"] and first["result"] == "answer to MEAS?"
    assert first["nodeid"] == "tests/test_x.py::test_y" and first["duration"] >= 0
    assert second["method"] == "query_float" and second["nodeid"] is None and "result" not in second
    assert second["error"].startswith("InstrumentError: FAKE::1::INSTR reported 1 error(s)")


class PropertyDriver:
    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self._volts = 0.0

    @property
    def volts(self) -> float:
        return self._volts

    @volts.setter
    def volts(self, value: float) -> None:
        self._volts = value


def test_properties_are_serialised_and_recorded_plain_attributes_pass(recorder: Recorder) -> None:
    proxy = InstrumentProxy(PropertyDriver("R"), role="psu", resource="R", recorder=recorder)
    proxy.volts = 5.0
    assert proxy.volts == 5.0
    assert proxy.resource == "R"
    calls = read_events(recorder.writer.path)
    assert [(c["method"], c["args"]) for c in calls] == [("volts=", [5.0]), ("volts", [])]
    assert calls[1]["result"] == 5.0
    assert "volts" in dir(proxy) and "psu" in repr(proxy)


def test_unusual_arguments_and_results_stay_valid_json(recorder: Recorder) -> None:
    class Odd:
        def __init__(self, resource: Any) -> None:
            pass

        def echo(self, *args: Any, **kwargs: Any) -> Any:
            return args[0]

    proxy = InstrumentProxy(Odd(None), role="x", resource="R", recorder=recorder)
    proxy.echo(float("nan"), b"\x00\x01", object(), "x" * 10000, gain=float("inf"))
    proxy.echo(list(range(1000)))
    first, second = read_events(recorder.writer.path)
    assert first["args"][0] == "nan" and first["args"][1] == "b'\\x00\\x01'" and first["result"] == "nan"
    assert first["args"][3].endswith("[10000 chars]") and first["kwargs"] == {"gain": "inf"}
    assert len(second["result"]) == 65 and second["result"][-1] == "...[1000 items]"


class Scripted:
    """A resource answering from a script of queries, recording writes."""

    resource_name = "SCRIPT::INSTR"

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.writes: list[str] = []

    def query(self, command: str) -> str:
        return self.answers[command].pop(0)

    def write(self, command: str) -> None:
        self.writes.append(command)


def test_check_errors_drains_the_queue_into_one_error() -> None:
    resource = Scripted({"SYST:ERR?": ['-113,"Undefined header"', '-222,"Data out of range"', '+0,"No error"']})
    with pytest.raises(InstrumentError) as info:
        ScpiInstrument(resource).check_errors()
    assert info.value.errors == [(-113, "Undefined header"), (-222, "Data out of range")]
    assert "SCRIPT::INSTR reported 2 error(s)" in str(info.value)


def test_check_errors_is_bounded_on_an_instrument_that_never_empties() -> None:
    resource = Scripted({"SYST:ERR?": ['-350,"Queue overflow"'] * 100})
    with pytest.raises(InstrumentError) as info:
        ScpiInstrument(resource).check_errors()
    assert len(info.value.errors) == 65 and "not empty" in info.value.errors[-1][1]


def test_drivers_send_the_scpi_they_document() -> None:
    resource = Scripted({"MEAS:VOLT:DC? 10": ["3.3"], "MEAS:CURR:AC?": ["0.5"], "MEAS:RES?": ["1e3"], "OUTP?": ["1"]})
    dmm = Dmm(resource)
    assert (dmm.measure_voltage(10), dmm.measure_current(ac=True), dmm.measure_resistance()) == (3.3, 0.5, 1000.0)
    psu = PowerSupply(resource)
    psu.set_voltage(5.0)
    psu.set_current(0.25)
    psu.output(True)
    psu.reset()
    assert resource.writes == ["VOLT 5", "CURR 0.25", "OUTP ON", "*RST", "*CLS"]
    assert psu.output_enabled() is True


class PairResource(UnsafeResource):
    """A resource whose answer is read separately from the command that asked for it."""

    def read(self) -> str:
        time.sleep(0)
        return f"answer to {self.pending}"


class PairDriver:
    def __init__(self, resource: PairResource) -> None:
        self.resource = resource

    def write(self, command: str) -> None:
        self.resource.write(command)

    def read(self) -> str:
        return self.resource.read()


def write_read_pairs(proxy: Any, *, hold: bool, threads: int = 8, n: int = 100) -> list[tuple[str, str]]:
    def pair(cmd: str) -> str:
        if not hold:
            proxy.write(cmd)
            return str(proxy.read())
        with proxy.lock_context():
            proxy.write(cmd)
            return str(proxy.read())

    return hammer(pair, [f"C{i}?" for i in range(threads)], n)


def test_a_write_and_its_read_get_mixed_up_without_lock_context(recorder: Recorder, fast_switching: None) -> None:
    """The control: each call is serialised, but another thread's write can land between a write and its read."""
    proxy = InstrumentProxy(PairDriver(PairResource()), role="dmm", resource="FAKE::1::INSTR", recorder=recorder)
    assert write_read_pairs(proxy, hold=False)


def test_lock_context_keeps_the_instrument_for_a_write_and_its_read(recorder: Recorder, fast_switching: None) -> None:
    proxy = InstrumentProxy(PairDriver(PairResource()), role="dmm", resource="FAKE::1::INSTR", recorder=recorder)
    assert write_read_pairs(proxy, hold=True) == []
    calls = read_events(recorder.writer.path)
    assert len(calls) == 1600 and {c["method"] for c in calls} == {"write", "read"}  # calls inside still record


def test_lock_context_times_out_while_another_thread_keeps_the_instrument(recorder: Recorder) -> None:
    proxy = InstrumentProxy(PairDriver(PairResource()), role="dmm", resource="FAKE::1::INSTR", recorder=recorder)
    holding, done = threading.Event(), threading.Event()

    def keep() -> None:
        with proxy.lock_context():
            holding.set()
            done.wait()

    thread = threading.Thread(target=keep)
    thread.start()
    holding.wait()
    try:
        with (
            pytest.raises(TimeoutError, match=r"'dmm' .* still in use by another thread"),
            proxy.lock_context(timeout=0),
        ):
            pass
    finally:
        done.set()
        thread.join()
    with proxy.lock_context(timeout=0) as same:  # free again; re-entrant for the holder's own calls
        assert same is proxy
        same.write("X?")
        assert same.read() == "answer to X?"
    assert "lock_context" in dir(proxy)
