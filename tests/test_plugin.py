"""The pytest plugin, driven through pytester: options, fixtures, measurements, outcomes, events."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from plugincases import OUTCOMES, esc, session_events

from pytest_litmus.hooks import SubscriberWarning

REPO = Path(__file__).resolve().parent.parent


def test_importing_the_plugin_costs_no_visa_import() -> None:
    code = "import sys, pytest_litmus.plugin; print(sorted(m for m in sys.modules if m.startswith(('pyvisa', 'yaml', 'filelock'))))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_a_mock_run_imports_no_lock_backend(station_project: pytest.Pytester) -> None:
    """``--mock`` locks nothing on the host: the lock backends stay unimported (start-up time)."""
    station_project.makepyfile(
        """
        import sys
        def test_board(dmm, psu, measure):
            psu.set_voltage(5.0)
            measure("rail", dmm.measure_voltage(), units="V", low=0.0, high=10.0)
            assert not [m for m in sys.modules if m.startswith("pytest_litmus.locks")]
        """
    )
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock")
    result.assert_outcomes(passed=1)


#: The dataclasses a ``--mock`` run may define while starting: the records users see. Any other
#: class on that path is a plain class or a NamedTuple (a dataclass costs 0.3-0.8 ms to define).
USER_FACING_DATACLASSES = {
    "pytest_litmus.config.InstrumentConfig",
    "pytest_litmus.config.ProjectConfig",
    "pytest_litmus.config.StationConfig",
    "pytest_litmus.dut.Dut",
    "pytest_litmus.limits.LimitSpec",
    "pytest_litmus.measurements.Measurement",
    "pytest_litmus.settings.Settings",
}
DATACLASS_SPY = """
import dataclasses, json, sys
seen = set()
real = dataclasses._process_class
def spy(cls, *args, **kwargs):
    if cls.__module__.split(".")[0] == "pytest_litmus":
        seen.add(f"{cls.__module__}.{cls.__qualname__}")
    return real(cls, *args, **kwargs)
dataclasses._process_class = spy
import pytest
code = pytest.main(["examples/test_power_board.py::test_instruments_identify", "--station", "cell-7", "--mock",
                    "-q", "-p", "no:cacheprovider", "--litmus-data-dir", sys.argv[1]])
import pytest_litmus.backoff, pytest_litmus.events, pytest_litmus.holder, pytest_litmus.limits
import pytest_litmus.locks._owner, pytest_litmus.plugin.active, pytest_litmus.sim.faults, pytest_litmus.sim.library
import pytest_litmus.sim.simfile
print("DATACLASSES", json.dumps(sorted(seen)))
raise SystemExit(int(code))
"""


def test_a_mock_run_defines_no_internal_dataclass_while_starting(tmp_path: Path) -> None:
    import dataclasses

    if not hasattr(dataclasses, "_process_class"):  # the private seam the spy wraps
        pytest.skip("this Python's dataclasses has no _process_class")
    proc = subprocess.run(
        [sys.executable, "-c", DATACLASS_SPY, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("DATACLASSES "))
    assert set(json.loads(line.split(" ", 1)[1])) == USER_FACING_DATACLASSES


def test_without_a_station_nothing_is_imported_or_written(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
        import sys
        def test_plain():
            assert not [m for m in sys.modules if m.startswith("pyvisa")]
        """
    )
    result = station_project.runpytest_subprocess()  # a fresh interpreter: nothing imported before
    result.assert_outcomes(passed=1)
    assert not (station_project.path / "home").exists()
    assert "litmus:" not in result.stdout.str()


def test_station_fixture_without_a_station_says_how_to_select_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(station): pass")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no station selected: pass --station ID*"])


@pytest.mark.parametrize(
    ("how", "source"),
    [
        ("option", "[--station]"),
        ("env", "[LITMUS_STATION]"),
        ("ini", "[ini litmus_station]"),
        ("litmus.yaml", "[default_station in *litmus.yaml]"),
    ],
)
def test_every_door_selects_the_station_and_the_header_says_which(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, source: str
) -> None:
    args = ["--mock"]
    if how == "option":
        args.append("--station=cell-7")
    elif how == "env":
        monkeypatch.setenv("LITMUS_STATION", "cell-7")
    elif how == "ini":
        station_project.makeini("[pytest]\nlitmus_station = cell-7\n")
    else:
        station_project.makefile(".yaml", litmus="default_station: cell-7\n")
    station_project.makepyfile("def test_x(dmm): assert dmm.measure_voltage() > 3")
    result = station_project.runpytest(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [esc(f"litmus: station cell-7 (*cell-7.yaml) {source}"), esc("litmus: mock on [--mock]*")]
    )


def test_option_beats_env_beats_ini(station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(station_project.path / "stations" / "cell-7.yaml", station_project.path / "stations" / "cell-8.yaml")
    (station_project.path / "stations" / "cell-8.yaml").write_text(
        (station_project.path / "stations" / "cell-8.yaml").read_text().replace("station: cell-7", "station: cell-8")
    )
    station_project.makeini("[pytest]\nlitmus_station = nope\nlitmus_mock = true\nlitmus_lock_timeout = 2.5\n")
    monkeypatch.setenv("LITMUS_STATION", "cell-8")
    station_project.makepyfile("def test_x(): pass")
    result = station_project.runpytest()
    result.stdout.fnmatch_lines(
        [
            esc("litmus: station cell-8 * [LITMUS_STATION]"),
            esc("litmus: mock on [ini litmus_mock], lock timeout 2.5 s [ini litmus_lock_timeout]"),
        ]
    )
    result = station_project.runpytest("--station", "cell-7", "--litmus-lock-timeout", "none")
    result.stdout.fnmatch_lines(
        [esc("litmus: station cell-7 * [--station]"), esc("*lock timeout none (wait forever) [--litmus-lock-timeout]")]
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            {"LITMUS_MOCK": "maybe"},
            "environment variable LITMUS_MOCK: mock: expected 1, true, yes, on or 0, false, no, off, got 'maybe'",
        ),
        (
            {"LITMUS_LOCK_TIMEOUT": "-1"},
            "environment variable LITMUS_LOCK_TIMEOUT: lock_timeout: expected seconds >= 0*",
        ),
        ({"LITMUS_STATION": "../etc"}, "*station: expected a plain station name*"),
        (
            {"LITMUS_STATION": "cell-9"},
            "*station 'cell-9' (from LITMUS_STATION) not found in *; available stations: cell-7",
        ),
    ],
)
def test_bad_settings_are_usage_errors_naming_their_source(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setup: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("LITMUS_STATION", "cell-7")
    for key, value in setup.items():
        monkeypatch.setenv(key, value)
    station_project.makepyfile("def test_x(): pass")
    result = station_project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: litmus: {message}"])


def test_a_broken_station_file_is_a_usage_error_naming_file_and_key(station_project: pytest.Pytester) -> None:
    path = station_project.path / "stations" / "cell-7.yaml"
    path.write_text(path.read_text().replace("lock: exclusive", "lock: exclusively"))
    station_project.makepyfile("def test_x(): pass")
    result = station_project.runpytest("--station", "cell-7", "--mock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: litmus: *cell-7.yaml: instruments.dmm.lock: expected one of exclusive, shared, none, got 'exclusively'"
        ]
    )


def test_role_fixtures_and_a_missing_role(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
        def test_roles(dmm, psu, station):
            assert station.instrument("dmm") is dmm
            assert "34465A" in dmm.idn() and "HMP4040" in psu.idn()
        def test_scope(scope):
            pass
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*fixture 'scope' not found: station 'cell-7' (*cell-7.yaml) has no role 'scope'; its roles are: dmm, psu"]
    )


def test_a_finished_tests_measurements_are_let_go_but_its_junit_properties_stay(
    station_project: pytest.Pytester,
) -> None:
    """Kept for the whole session, a test's Measurement objects would only feed the garbage collector."""
    station_project.makepyfile(
        """
        from pytest_litmus.plugin.active import FAILED_LINES, MEASUREMENTS, PROPERTIES

        def test_first(measure):
            measure("rail", 3.3, units="V", low=3.2, high=3.4)

        def test_second(request, measure):
            measure("rail", 3.3, units="V", low=3.2, high=3.4)
            first, second = request.session.items
            assert not [key for key in (MEASUREMENTS, PROPERTIES, FAILED_LINES) if key in first.stash]
            assert ("measurement.rail", 3.3) in first.user_properties
            assert len(second.stash[MEASUREMENTS]) == 1
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_out_of_limit_measurements_fail_the_test_after_its_body(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(
        """
        reached = []
        def test_rails(dmm, measure):
            measure("low_rail", 1.0, units="V", low=3.2, high=3.4)
            measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
            measure("ripple", 0.5, units="V", high=0.01)
            reached.append(True)
        def test_body_ran_to_the_end():
            assert reached == [True]
        def test_bad_arguments(measure):
            measure("x", "text", low=1)
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_rails _*",
            esc("low_rail = 1 V, limits [3.2, 3.4]: 2.2 V below low (*.py:3); 1 more out of limits: ripple"),
            esc("ripple = 0.5 V, limits <= 0.01: 0.49 V above high (*.py:5)"),
            "*- litmus measurements -*",
            esc("rail_3v3 = 3.3012 V, limits [3.2, 3.4]: passed"),
            "*= litmus: measurements out of limits =*",
            esc("*::test_rails: low_rail = 1 V, limits [3.2, 3.4]: 2.2 V below low (*.py:3)"),
            esc("*::test_rails: ripple = 0.5 V, limits <= 0.01: 0.49 V above high (*.py:5)"),
        ]
    )
    result.stdout.fnmatch_lines(["*LimitTypeError: measurement 'x': has limits, so its value must be a number*"])
    measurements = [e for e in session_events(station_project) if e["type"] == "Measurement"]
    assert [(m["name"], m["outcome"]) for m in measurements] == [
        ("low_rail", "failed"),
        ("rail_3v3", "passed"),
        ("ripple", "failed"),
    ]
    assert all(
        m["nodeid"] == "test_out_of_limit_measurements_fail_the_test_after_its_body.py::test_rails"
        for m in measurements
    )
    junit = (station_project.path / "junit.xml").read_text()
    assert '<property name="measurement.rail_3v3" value="3.3012" />' in junit
    assert '<property name="measurement.low_rail.outcome" value="failed" />' in junit


def test_outcomes_and_event_file_content(station_project: pytest.Pytester) -> None:
    station_project.makepyfile(test_outcomes=OUTCOMES)
    result = station_project.runpytest("--station", "cell-7", "--mock")
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1, xfailed=1, xpassed=1)
    events = session_events(station_project)
    assert events[0]["type"] == "SessionStarted" and events[-1]["type"] == "SessionEnded"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    outcomes = {e["nodeid"].split("::")[1]: e for e in events if e["type"] == "TestOutcome"}
    assert {k: v["outcome"] for k, v in outcomes.items()} == {
        "test_pass": "passed",
        "test_fail": "failed",
        "test_skip": "skipped",
        "test_error": "error",
        "test_xfail": "xfailed",
        "test_xpass": "xpassed",
    }
    assert outcomes["test_fail"]["message"].startswith("AssertionError: rail never came up")
    assert outcomes["test_error"]["message"] == "RuntimeError: fixture exploded"
    started = [e["nodeid"] for e in events if e["type"] == "TestStarted"]
    assert started == [e["nodeid"] for e in events if e["type"] == "TestOutcome"]
    call = next(e for e in events if e["type"] == "InstrumentCall" and e["method"] == "set_voltage")
    assert call["nodeid"].endswith("::test_fail") and call["args"] == [1.0]
    ended = events[-1]
    assert ended["outcome"] == "failed"
    assert ended["counts"] == {
        "passed": 1,
        "failed": 1,
        "skipped": 1,
        "error": 1,
        "xfailed": 1,
        "xpassed": 1,
        "measurements_failed": 1,
    }


@pytest.mark.parametrize(
    ("body", "outcome"),
    [("def test_x(): pass", "passed"), ("def test_x(): raise KeyboardInterrupt", "terminated")],
)
def test_session_outcome(station_project: pytest.Pytester, body: str, outcome: str) -> None:
    station_project.makepyfile(body)
    station_project.runpytest("--station", "cell-7", "--mock", no_reraise_ctrlc=True)
    assert session_events(station_project)[-1]["outcome"] == outcome


def test_conftest_subscribers_receive_events_and_a_broken_one_is_a_warning(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(
        """
        import json
        seen = []
        def litmus_event(event):
            seen.append(event["type"])
            if event["type"] == "SessionEnded":
                open("seen.json", "w").write(json.dumps(seen))

        class Broken:
            def litmus_event(self, event):
                raise RuntimeError("dashboard unreachable")

        def pytest_configure(config):
            config.pluginmanager.register(Broken(), "broken-dashboard")
        """
    )
    station_project.makepyfile("def test_x(dmm): dmm.measure_voltage()")
    with pytest.warns(SubscriberWarning, match="'broken-dashboard' raised RuntimeError: dashboard unreachable"):
        result = station_project.runpytest("--station", "cell-7", "--mock", "-W", "always")
    result.assert_outcomes(passed=1)
    seen = json.loads((station_project.path / "seen.json").read_text())
    assert seen == [
        "SessionStarted",
        "TestStarted",
        "InstrumentConnected",
        "InstrumentCall",
        "TestOutcome",
        "InstrumentDisconnected",
        "SessionEnded",
    ]
    assert [e["type"] for e in session_events(station_project)] == seen


def test_the_examples_run_on_the_mock_station(station_project: pytest.Pytester) -> None:
    shutil.copytree(REPO / "examples", station_project.path / "examples")
    result = station_project.runpytest("examples", "--station", "cell-7", "--mock")
    result.assert_outcomes(passed=6, xfailed=1)
    events = session_events(station_project)
    types = [e["type"] for e in events]
    assert types[0] == "SessionStarted" and types[-1] == "SessionEnded"
    assert types.count("TestStarted") == types.count("TestOutcome") == 7
    connected = {e["role"]: e for e in events if e["type"] == "InstrumentConnected"}
    assert set(connected) == {"dmm", "psu"} and all(c["idn"] for c in connected.values())
    assert types.index("InstrumentConnected") > types.index("TestStarted")
    measurements = {e["name"]: e for e in events if e["type"] == "Measurement"}
    assert measurements["rail_3v3"]["value"] == 3.3012 and measurements["rail_3v3"]["units"] == "V"
    assert measurements["rail_3v3_rev_c"]["outcome"] == "failed"
    assert all(m["outcome"] == "passed" for k, m in measurements.items() if k != "rail_3v3_rev_c")
    outcomes = [e["outcome"] for e in events if e["type"] == "TestOutcome"]
    assert outcomes == ["passed"] * 6 + ["xfailed"]
    (wait,) = [e for e in events if e["type"] == "SrqWait"]
    assert wait["role"] == "dmm" and wait["outcome"] == "srq" and wait["status_byte"] & 0x40
    assert wait["nodeid"].endswith("::test_triggered_reading_by_srq")
    # the session fixture switched the supply off after the last test, before the session closed
    last_call = [e for e in events if e["type"] == "InstrumentCall"][-1]
    assert (last_call["method"], last_call["args"]) == ("output", [False])
    assert events[-1]["outcome"] == "passed"


def test_a_wrapper_subscriber_in_a_conftest_runs_around_the_others(station_project: pytest.Pytester) -> None:
    station_project.makeconftest(
        """
        import json
        import pytest
        calls = []

        @pytest.hookimpl(wrapper=True)
        def litmus_event(event):
            calls.append("enter")
            result = yield
            calls.append("exit")
            if event["type"] == "SessionEnded":
                open("calls.json", "w").write(json.dumps(calls))
            return result

        class Last:
            @pytest.hookimpl(trylast=True)
            def litmus_event(self, event):
                calls.append("last")

        class First:
            @pytest.hookimpl(tryfirst=True)
            def litmus_event(self, event):
                calls.append("first")

        def pytest_configure(config):
            config.pluginmanager.register(Last(), "last")
            config.pluginmanager.register(First(), "first")
        """
    )
    station_project.makepyfile("def test_x(dmm): dmm.idn()")
    station_project.runpytest("--station", "cell-7", "--mock").assert_outcomes(passed=1)
    calls = json.loads((station_project.path / "calls.json").read_text())
    events = session_events(station_project)
    # the event file writer is a plain subscriber between first and last
    assert calls == ["enter", "first", "last", "exit"] * len(events)


def _entry_point_dist(site: Path, groups: str) -> None:
    """A fake installed distribution ``dash`` whose module ``dash_plugin`` subscribes to events."""
    site.mkdir()
    (site / "dash_plugin.py").write_text(
        "import os\n"
        "def litmus_event(event):\n"
        "    with open(os.path.join(os.environ['DASH_OUT'], 'dash.txt'), 'a') as f:\n"
        "        f.write(event['type'] + '\\n')\n"
    )
    dist = site / "dash-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dash\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(groups)


@pytest.mark.parametrize(
    "groups",
    ["[litmus]\ndash = dash_plugin\n", "[litmus]\ndash = dash_plugin\n\n[pytest11]\ndash-pytest = dash_plugin\n"],
    ids=["litmus-only", "also-a-pytest-plugin"],
)
def test_litmus_entry_point_plugins_are_loaded_under_pytest_once(
    station_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, groups: str
) -> None:
    _entry_point_dist(station_project.path / "site", groups)
    monkeypatch.setenv("PYTHONPATH", str(station_project.path / "site"))
    monkeypatch.setenv("DASH_OUT", str(station_project.path))
    station_project.makepyfile("def test_x(): pass")
    station_project.runpytest_subprocess("--station", "cell-7", "--mock").assert_outcomes(passed=1)
    seen = (station_project.path / "dash.txt").read_text().split()
    assert seen == [e["type"] for e in session_events(station_project)]


def test_role_fixtures_serve_session_fixtures_and_calls_belong_to_the_running_test(
    station_project: pytest.Pytester,
) -> None:
    station_project.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def powered(psu):
            psu.set_voltage(5.0)      # runs during the setup of the first test that needs it
            yield psu
            psu.output(False)         # runs during the teardown of the last test

        def test_first(dmm):
            dmm.measure_voltage()

        def test_second(powered, dmm, measure):
            measure("rail", dmm.measure_voltage(), low=3.2, high=3.4)

        def test_third(powered, psu):
            assert psu is powered
            psu.set_voltage(4.0)
        """
    )
    station_project.runpytest("--station", "cell-7", "--mock").assert_outcomes(passed=3)
    events = session_events(station_project)
    calls = [(e["method"], e["args"], e["nodeid"].split("::")[-1]) for e in events if e["type"] == "InstrumentCall"]
    assert calls == [
        ("measure_voltage", [], "test_first"),
        ("set_voltage", [5.0], "test_second"),  # the session fixture's setup: the test pytest set it up for
        ("measure_voltage", [], "test_second"),
        ("set_voltage", [4.0], "test_third"),
        ("output", [False], "test_third"),  # its teardown: the last test
    ]
    (measurement,) = [e for e in events if e["type"] == "Measurement"]
    assert measurement["nodeid"].endswith("::test_second")


def test_measure_works_from_a_session_fixture(station_project: pytest.Pytester) -> None:
    """``measure`` is session-scoped: a session fixture's measurement belongs to the test being set up."""
    station_project.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def calibrated(measure, dmm):
            measure("cal_offset", 0.5, units="V", high=0.01)
            return True

        def test_first(calibrated, measure):
            measure("rail", 3.3, units="V", low=3.2, high=3.4)

        def test_second(calibrated, measure):
            assert measure.failed == []
        """
    )
    result = station_project.runpytest("--station", "cell-7", "--mock")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_first _*",
            "cal_offset = 0.5 V, limits <= 0.01: 0.49 V above high (test_measure_works_from_a_session_fixture.py:5)",
        ]
    )
    measurements = {e["name"]: e["nodeid"] for e in session_events(station_project) if e["type"] == "Measurement"}
    assert measurements == {
        "cal_offset": "test_measure_works_from_a_session_fixture.py::test_first",
        "rail": "test_measure_works_from_a_session_fixture.py::test_first",
    }
