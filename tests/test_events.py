"""Event files: line format, the fast path, subscribers, reading back torn files."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus.events import EventFile, Recorder, call_head, encode_line, filter_events, read_events, read_session
from pytest_litmus.hooks import LitmusPluginManager, SubscriberWarning


@pytest.fixture
def hooks() -> LitmusPluginManager:
    return LitmusPluginManager()


@pytest.fixture
def recorder(tmp_path: Path, hooks: LitmusPluginManager) -> Iterator[Recorder]:
    rec = Recorder("s-1", EventFile(tmp_path / "s-1" / "events.jsonl"), hooks)
    yield rec
    rec.close()


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def litmus_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def record_calls(rec: Recorder) -> None:
    rec.nodeid = "t.py::test_a"
    rec.instrument_call("dmm", "query", call_head("dmm", "query"), ("MEAS?",), {}, "3.3", None, 15_000)
    rec.nodeid = None
    rec.instrument_call("psu", "set", call_head("psu", "set"), (5.0, True), {"ch": 2}, None, None, 20_000)
    rec.instrument_call("psu", "bad", call_head("psu", "bad"), (), {}, None, "ValueError: no", 10_000)


def test_every_line_has_seq_ts_session_type(recorder: Recorder) -> None:
    recorder.emit("SessionStarted", {"station": "cell-7"})
    record_calls(recorder)
    events = read_events(recorder.writer.path)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    for event in events:
        assert {"seq", "ts", "session", "type"} <= event.keys() and event["session"] == "s-1"
        assert isinstance(event["ts"], float)


def test_fast_path_lines_equal_what_subscribers_see(
    recorder: Recorder, hooks: LitmusPluginManager, tmp_path: Path
) -> None:
    record_calls(recorder)  # writer alone: the direct line builder
    collector = Collector()
    hooks.register(collector)
    record_calls(recorder)  # with a subscriber: the generic dict path
    fast, slow = read_events(recorder.writer.path)[:3], read_events(recorder.writer.path)[3:]
    assert slow == collector.events
    for a, b in zip(fast, slow, strict=True):
        assert list(a) == list(b)  # same keys, same order
        assert {k: v for k, v in a.items() if k not in ("seq", "ts")} == {
            k: v for k, v in b.items() if k not in ("seq", "ts")
        }


def test_fast_path_commands_timestamps_and_durations_read_back_exactly(recorder: Recorder) -> None:
    from pytest_litmus.events import ARGS_CACHE_SIZE

    commands = [f"SOUR:VOLT {i}" for i in range(ARGS_CACHE_SIZE + 10)]  # past the cache bound
    before = time.time()
    for command in [*commands, *commands[:5], "x" * 5000]:
        recorder.instrument_call("psu", "write", call_head("psu", "write"), (command,), {}, None, None, 1_234)
    after = time.time()
    events = read_events(recorder.writer.path)
    assert [e["args"][0] for e in events[:-1]] == [*commands, *commands[:5]]
    assert events[-1]["args"][0].endswith("...[5000 chars]")  # long text is cut, cached or not
    assert all(e["duration"] == 1.234e-06 for e in events)
    assert all(before - 1e-6 <= e["ts"] <= after + 1e-6 for e in events)


def test_a_raising_subscriber_is_a_warning_and_the_others_still_get_the_event(
    recorder: Recorder, hooks: LitmusPluginManager
) -> None:
    class Broken:
        def litmus_event(self, event: dict[str, Any]) -> None:
            raise RuntimeError("dashboard down")

    collector = Collector()
    hooks.register(Broken(), name="broken")
    hooks.register(collector)
    with pytest.warns(SubscriberWarning, match="'broken' raised RuntimeError: dashboard down"):
        recorder.emit("Observation", {"key": "t", "value": 1})
    assert [e["type"] for e in collector.events] == ["Observation"]
    assert [e["type"] for e in read_events(recorder.writer.path)] == ["Observation"]


def test_non_finite_and_odd_values_never_break_a_line() -> None:
    line = encode_line({"seq": 1, "value": float("nan"), "obj": object(), "path": Path("/x")})
    event = json.loads(line)
    assert event["value"] == "nan" and event["obj"].startswith("<object") and event["path"] == "/x"


def test_a_torn_last_line_is_skipped_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":1,"type":"SessionStarted"}\n{"seq":2,"type":"TestStarted"}\n{"seq":3,"ty')
    log = read_session(path)
    assert [e["seq"] for e in log.events] == [1, 2]
    assert log.torn and not log.complete and log.bad_lines == 0
    assert log.started == {"seq": 1, "type": "SessionStarted"} and log.ended is None


def test_a_complete_session_and_a_corrupt_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":1,"type":"SessionStarted"}\nnot json\n[1]\n{"seq":2,"type":"SessionEnded"}\n')
    log = read_session(path)
    assert log.complete and not log.torn and log.bad_lines == 2 and log.ended == {"seq": 2, "type": "SessionEnded"}


def test_filter_by_type_and_role() -> None:
    events = [
        {"type": "InstrumentCall", "role": "dmm"},
        {"type": "InstrumentCall", "role": "psu"},
        {"type": "Measurement"},
    ]
    assert list(filter_events(events, "InstrumentCall", "psu")) == [events[1]]
    assert list(filter_events(events, ["Measurement", "InstrumentCall"])) == events
    assert list(filter_events(events)) == events


def test_closed_recorder_unregisters_its_writer(tmp_path: Path, hooks: LitmusPluginManager) -> None:
    rec = Recorder("s-2", EventFile(tmp_path / "e.jsonl"), hooks)
    rec.close()
    assert hooks.subscribers() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.writer.close()  # closing twice is harmless


# --------------------------------------------------------------------------- hooks through pluggy


def test_subscribers_are_called_through_pluggy_in_tryfirst_trylast_order(
    recorder: Recorder, hooks: LitmusPluginManager
) -> None:
    from pytest_litmus import hookimpl

    order: list[str] = []

    class Last:
        @hookimpl(trylast=True)
        def litmus_event(self, event: dict[str, Any]) -> None:
            order.append("last")

    class First:
        @hookimpl(tryfirst=True)
        def litmus_event(self, event: dict[str, Any]) -> None:
            order.append("first")

    class Plain:
        def litmus_event(self, event: dict[str, Any]) -> None:
            order.append("plain")

    for plugin in (Last(), First(), Plain()):
        hooks.register(plugin)
    recorder.emit("Observation", {"key": "k", "value": 1})
    recorder.instrument_call("dmm", "idn", call_head("dmm", "idn"), (), {}, "x", None, 1)
    assert order == ["first", "plain", "last"] * 2


def test_a_wrapper_subscriber_wraps_the_others_and_its_failures_are_isolated(
    recorder: Recorder, hooks: LitmusPluginManager
) -> None:
    from collections.abc import Generator

    from pytest_litmus import hookimpl

    seen: list[str] = []

    class Timing:
        @hookimpl(wrapper=True)
        def litmus_event(self, event: dict[str, Any]) -> Generator[None, object, object]:
            seen.append(f"before {event['type']}")
            result = yield
            seen.append(f"after {event['type']}")
            return result

    class BrokenWrapper:
        @hookimpl(wrapper=True)
        def litmus_event(self, event: dict[str, Any]) -> Generator[None, object, object]:
            yield
            raise RuntimeError("teardown broke")

    hooks.register(Timing())
    hooks.register(BrokenWrapper(), name="broken-wrapper")
    collector = Collector()
    hooks.register(collector)
    with pytest.warns(SubscriberWarning, match="'broken-wrapper' raised RuntimeError: teardown broke"):
        recorder.emit("Observation", {"key": "k", "value": 1})
    assert seen == ["before Observation", "after Observation"]
    assert [e["type"] for e in collector.events] == ["Observation"]
    assert [e["type"] for e in read_events(recorder.writer.path)] == ["Observation"]


def test_an_entry_point_plugin_that_is_already_registered_is_not_registered_twice(
    hooks: LitmusPluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "dash_plugin.py").parent.mkdir(parents=True)
    (site / "dash_plugin.py").write_text("seen = []\ndef litmus_event(event):\n    seen.append(event['type'])\n")
    dist = site / "dash-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dash\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[litmus]\ndash = dash_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    import dash_plugin  # type: ignore[import-not-found]

    hooks.register(dash_plugin, name="dash-as-pytest-plugin")
    assert hooks.load_setuptools_entrypoints("litmus") == 0
    hooks.unregister(dash_plugin)
    assert hooks.load_setuptools_entrypoints("litmus") == 1 and hooks.get_plugin("dash") is dash_plugin


def test_a_nan_measurement_keeps_its_event_type(tmp_path: Path) -> None:
    """A NaN value takes the slow encoding path: the ``type`` must still be the plain text ``Measurement``."""
    from pytest_litmus.events import encode_line
    from pytest_litmus.eventtypes import EventType

    line = json.loads(encode_line({"seq": 1, "type": EventType.MEASUREMENT, "value": float("nan")}))
    assert line["type"] == "Measurement"
    assert line["value"] == "nan"


def test_a_value_that_contains_itself_is_encoded_cut_not_raised() -> None:
    """The event encoder has no circular-reference check (it is built once): recursion falls back to json_safe."""
    from pytest_litmus.events import encode_line

    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    for _ in range(2):  # twice: nothing is left behind by the first failure
        line = json.loads(encode_line({"seq": 1, "type": "Observation", "value": loop}))
        assert line["value"]["name"] == "loop" and isinstance(line["value"]["self"], dict)
    assert json.loads(encode_line({"seq": 2, "value": [1.5, "x"]}))["value"] == [1.5, "x"]


def test_read_session_skips_a_line_nested_too_deeply(tmp_path: Path) -> None:
    """One line parser for writer and readers: a deeply nested line is a bad line, not a RecursionError."""
    path = tmp_path / "events.jsonl"
    good = b'{"seq":1,"ts":1.0,"session":"s","type":"SessionStarted"}\n'
    path.write_bytes(good + b'{"x":' + b"[" * 200_000 + b"\n" + good.replace(b":1,", b":2,"))
    log = read_session(path)
    assert [e["seq"] for e in log.events] == [1, 2] and log.bad_lines == 1


class _Name(str):
    """A str subclass as a measurement name (an enum member, say)."""


class _NoHash(str):
    """A str subclass that cannot be a dict key."""

    __hash__ = None  # type: ignore[assignment]


def _measurements() -> list[Any]:
    from fractions import Fraction

    from pytest_litmus.limits import parse_limits
    from pytest_litmus.measurements import judge

    table = parse_limits(
        {
            "measurements": {
                "rail": {"low": 3.2, "high": 3.4, "units": "V", "marginal_high": 3.38},
                "ok": {"equals": "OK"},
            }
        },
        path=Path("limits.yaml"),
        sha256="0" * 64,
    )
    rail, ok = table.spec_for("rail", None, None, None), table.spec_for("ok", None, None, None)
    return [
        judge("rail_3", 3.3012345, units="V", low=3.2, high=3.4, nodeid="t.py::test_a[1]", where="t.py:3"),
        judge("rail_3", 3.5, units="V", low=3.2, high=3.4, nodeid="t.py::test_a[1]"),
        judge("open", 12, nodeid=None),
        judge("nan", float("nan"), low=0.0),
        judge("inf", float("-inf"), high=0.0),
        judge("big", 10**30, low=0),
        judge("frac", Fraction(1, 3), low=0, high=1),
        judge(_Name("sub"), 1.0, units="Ω", low=0.5, high=None, where="tëst.py:1"),
        judge("x" * 5000, "y" * 5000, units="z" * 5000),
        judge("rail", 3.39, spec=rail, nodeid="t.py::test_b"),
        judge("ok", "OK", spec=ok),
        judge("ok", "NOT OK", spec=ok),
        # judged again against limits seen before (shared limits, their JSON and bounds kept)
        judge("rail_3", 3.25, units="V", low=3.2, high=3.4, nodeid="t.py::test_a[2]", where="t.py:3"),
        judge("rail", 3.21, spec=rail, nodeid="t.py::test_b"),
        judge("hi", float("-inf"), high=5.0),
        judge("hi", float("-inf"), high=5.0),
        judge("i", 7, low=1.5, high=9.5),
        judge("i", 7, low=1.5, high=9.5, nodeid="t.py::test_c"),
        judge("zero", -0.0, low=-0.0, high=1.0),
        judge("zero", 0.0, low=0.0, high=1.0),
        judge("zero", 0.0, low=-0.0, high=1.0),
        # names, units and call sites whose JSON is kept: not str, str subclasses, unhashable, seen before
        judge("rail_3", 3.3, units=_Name("V"), low=3.2, high=3.4, where=_Name("t.py:9")),
        judge("rail_3", 3.3, units=5, low=3.2, high=3.4, where="t.py:3"),  # type: ignore[arg-type]
        judge("rail_3", 3.3, units=["V"], low=3.2, high=3.4),  # type: ignore[arg-type]
        judge(_NoHash("rail_3"), 3.3, units=_NoHash("V"), low=3.2, high=3.4, where=_NoHash("t.py:3")),
        judge("rail_3", 3.3, units=None, low=3.2, high=3.4, where=None),
        judge("rail_3", 3.3, units="", low=3.2, high=3.4, where='t"ü\\.py:3'),
    ]


@pytest.mark.parametrize("dut", [None, "SN1", 'S"N\\2'])
def test_the_measurement_line_builder_writes_what_the_event_encoder_would(dut: str | None) -> None:
    """The holder's ``Measurement`` fast path: byte for byte the line the generic encoder writes."""
    from pytest_litmus.station import measurement_body

    for attempt in (None, 1, 2):  # the test's fields are kept from one measurement to the next: each change shows
        for m in _measurements():
            fields = {**m.fields(), "dut": dut, "attempt": attempt}
            generic = encode_line({"seq": 7, "ts": 1.5, "session": "s", "type": "Measurement", **fields})
            built = f'{{"seq":7,"ts":1.5,"session":"s","type":"Measurement",{measurement_body(m, dut, attempt)}}}\n'
            assert built.encode() == generic, m.name[:20]


@pytest.mark.parametrize("dut", [None, "SN1", 'S"N\\2'])
def test_the_test_event_line_builders_write_what_the_event_encoder_would(dut: str | None) -> None:
    """``TestStarted`` and ``TestOutcome`` on the holder's fast path: byte for byte the generic encoder's lines."""
    from pytest_litmus import station

    def line(body: str) -> bytes:
        return f'{{"seq":7,"ts":1.5,"session":"s","type":"T",{body}}}\n'.encode()

    def generic(**fields: object) -> bytes:
        return encode_line({"seq": 7, "ts": 1.5, "session": "s", "type": "T", **fields})

    for nodeid in ("t.py::test_a[1]", 't.py::tëst["q"]', "x" * 5000):
        for attempt in (None, 1, 2):
            assert line(station.started_body(nodeid, dut, attempt)) == generic(nodeid=nodeid, dut=dut, attempt=attempt)
            for outcome, duration, message in (
                ("passed", 0.00123, None),
                ("failed", 12.5, 'AssertionError: assert 3.5 <= 3.4 \u00b1 "x"\n'),
                ("rerun", 0.0, "y" * 5000),
                ("xfailed", 1e-7, ""),
            ):
                fields = dict(nodeid=nodeid, outcome=outcome, duration=duration, message=message)
                built = line(station.outcome_body(nodeid, outcome, duration, message, dut, attempt))
                assert built == generic(**fields, dut=dut, attempt=attempt), (outcome, attempt)


def test_the_measurement_line_follows_the_tests_unit_and_attempt_from_one_measurement_to_the_next() -> None:
    from pytest_litmus.measurements import judge
    from pytest_litmus.station import measurement_body

    m = judge("rail", 3.3, low=3.2, high=3.4, nodeid="t.py::test_a")
    for dut, attempt in (("SN1", 1), ("SN1", 2), ("SN1", 2), ("SN2", 2), (None, 2), (None, None), ("SN1", 1)):
        event = json.loads("{" + measurement_body(m, dut, attempt) + "}")
        assert (event["nodeid"], event["dut"], event["attempt"]) == ("t.py::test_a", dut, attempt)


def test_measurements_on_the_fast_path_equal_what_subscribers_see(
    recorder: Recorder, hooks: LitmusPluginManager
) -> None:
    from pytest_litmus.station import measurement_body

    def record() -> None:
        for m in _measurements():
            fields = {**m.fields(), "dut": "SN1", "attempt": 1}
            recorder.emit_encoded("Measurement", measurement_body(m, "SN1", 1), lambda f=fields: f)

    record()  # writer alone: written as built
    collector = Collector()
    hooks.register(collector)
    record()  # with a subscriber: the event dict, through the hook
    events = read_events(recorder.writer.path)
    half = len(events) // 2
    assert [e["seq"] for e in events] == list(range(1, 2 * half + 1))
    for a, b in zip(events[:half], events[half:], strict=True):
        assert list(a) == list(b)
        assert json.dumps({k: v for k, v in a.items() if k not in ("seq", "ts")}) == json.dumps(
            {k: v for k, v in b.items() if k not in ("seq", "ts")}
        )
    assert len(collector.events) == half and all(isinstance(e["ts"], float) for e in events)


def test_a_limits_dict_is_written_as_it_is_after_an_equal_one_of_another_type_or_sign() -> None:
    """The limits JSON is cached by value: ``1``, ``1.0`` and ``True``, or ``0.0`` and ``-0.0``, are
    equal keys to a dict but written differently, so each must be written as itself."""
    from pytest_litmus.events import encode_value
    from pytest_litmus.station import _limits_json

    for limits in (
        {"equals": 1},
        {"equals": True},
        {"equals": 1.0},
        {"low": 0.0, "high": 1.0},
        {"low": -0.0, "high": 1.0},
        {"low": 0, "high": 1},
        {"low": 0.0, "low_inclusive": False},
        {"low": 0.0, "low_inclusive": 0},
    ):
        assert _limits_json(limits) == encode_value(limits), limits
        assert _limits_json(limits) == encode_value(limits), limits  # the cached answer too


def test_junit_properties_are_each_measurements_own_however_often_its_kind_was_seen() -> None:
    """A measurement's JUnit properties, made once per name, units and limits: equal to making them anew."""
    from pytest_litmus.limittext import limit_texts
    from pytest_litmus.measurements import judge
    from pytest_litmus.plugin.pertest import _user_properties

    def made_anew(m: Any) -> list[tuple[str, object]]:
        low, high, limits = limit_texts(m.low, m.high, m.limits)
        prefix = f"measurement.{m.name}"
        made = [(prefix, m.value), (f"{prefix}.units", m.units or ""), (f"{prefix}.low", low), (f"{prefix}.high", high)]
        return (
            made + ([(f"{prefix}.limits", limits)] if limits is not None else []) + [(f"{prefix}.outcome", m.outcome)]
        )

    measured = _measurements()
    measured += [judge("rail_3", 3.3, units="mV", low=3.2, high=3.4), judge("rail_3", 3.1, units="V", low=3.2)]
    for _ in range(2):  # the second time round every kind has been seen
        assert _user_properties(measured) == [p for m in measured for p in made_anew(m)]
    for m in measured:  # one at a time, after the others
        assert _user_properties([m]) == made_anew(m), m.name[:20]
