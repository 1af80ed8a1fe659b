"""The pytest glue: ``--station`` into a session, role fixtures, measurements, outcomes.

Without a station (no ``--station``, ``LITMUS_STATION``, ``litmus_station`` or
``default_station``) the plugin registers nothing beyond its options and two
fixtures: no VISA import, no file written, no per-test hook.

Under pytest-xdist the controller holds the session: its instruments, locks and
event log, served to the workers by an instrument server whose connection file
reaches them in ``workerinput``. Each worker joins that session
(a :class:`~pytest_litmus.sharing.JoinedStation`), so one run is one session directory.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections import Counter
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_litmus import options
from pytest_litmus.errors import EventsNotWritten, LitmusError
from pytest_litmus.eventtypes import EventType

if TYPE_CHECKING:
    from pytest_litmus.config import StationConfig
    from pytest_litmus.dut import Dut
    from pytest_litmus.hooks import LitmusPluginManager
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.settings import Settings
    from pytest_litmus.station import SessionOutcome, Station


@dataclass
class Active:
    """What the plugin resolved for this run (kept under :data:`ACTIVE`)."""

    station: StationConfig
    data_dir: Path
    mock: bool
    lock_timeout: float | None
    sources: dict[str, str]
    hooks: LitmusPluginManager
    connection: Station | None = None
    #: This process under pytest-xdist: not distributing, the controller, or a worker.
    xdist: Literal["off", "controller", "worker"] = "off"
    #: A worker's: the controller's instrument server connection file, and how many workers there are.
    server_file: Path | None = None
    #: The controller's: ``host:port`` of the instrument server the workers join.
    server_address: str | None = None
    workers: int = 1
    #: The test running now (set by :class:`PerTestPlugin`), to which ``measure`` attributes measurements.
    item: pytest.Item | None = None
    #: Every setting as resolved at configure time (the ``dut`` serials among them).
    settings: Settings | None = None
    #: The unit this process tests (a worker's comes from the controller); the ``dut`` fixture.
    dut: Dut | None = None
    #: The controller's: the unit of each xdist worker, by worker id.
    units: dict[str, Dut | None] = field(default_factory=dict)


ACTIVE = pytest.StashKey[Active]()
MEASUREMENTS = pytest.StashKey[list["Measurement"]]()
#: The JUnit properties this plugin added to a test (taken back when the attempt is superseded).
PROPERTIES = pytest.StashKey[list[tuple[str, object]]]()
#: The running attempt's failed measurements, one line each (``Measurement.failure_line``).
FAILED_LINES = pytest.StashKey[list[str]]()

#: The ``workerinput`` key that carries the controller's connection file to xdist workers.
WORKERINPUT_KEY = "litmus_server_file"
#: The ``workerinput`` key that carries a worker's unit under test (serial, part, unit attempt).
WORKERINPUT_DUT = "litmus_dut"

#: Exit statuses that a session with lost events turns into INTERNAL_ERROR (interrupts and usage errors stay).
_LOSES_TO_LOST_EVENTS = frozenset(
    {pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED}
)

# pytest exit status -> session outcome (pytest.ExitCode values)
_SESSION_OUTCOME: dict[int, SessionOutcome] = {
    0: "passed",
    1: "failed",
    2: "terminated",
    3: "errored",
    4: "errored",
    5: "passed",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        active = _resolve(config)
    except LitmusError as exc:
        raise pytest.UsageError(f"litmus: {exc}") from None
    if active is None:
        config.pluginmanager.register(_idle_fixtures(), "litmus-idle")
        return
    _place_in_xdist(config, active)
    config.stash[ACTIVE] = active
    from pytest_litmus.hooks import PytestBridge

    config.pluginmanager.register(PytestBridge(active.hooks), "litmus-hook-bridge")
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):  # what connect() loads, pytest loads too
        active.hooks.load_setuptools_entrypoints("litmus", blocked=config.pluginmanager.is_blocked)
    config.pluginmanager.register(_station_fixtures(active), "litmus-roles")
    config.pluginmanager.register(SessionPlugin(active), "litmus-session")
    if active.xdist == "controller":
        config.pluginmanager.register(XdistController(active), "litmus-xdist-controller")
    else:  # the process that runs the tests records them
        chars = str(config.getoption("reportchars", "") or "")
        config.pluginmanager.register(PerTestPlugin(active, show_passed="P" in chars or "A" in chars), "litmus-tests")


def _place_in_xdist(config: pytest.Config, active: Active) -> None:
    """Whether this process is an xdist controller or worker (and a worker's server file)."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        path = workerinput.get(WORKERINPUT_KEY)
        if not path:
            raise pytest.UsageError(
                "litmus: this pytest-xdist worker got no instrument server from the controller; "
                "run the controller with pytest-litmus active too (the same --station)"
            )
        active.xdist, active.server_file = "worker", Path(path)
        active.workers = int(workerinput.get("workercount", 1))
        unit = workerinput.get(WORKERINPUT_DUT)
        if unit is not None:
            from pytest_litmus.dut import Dut

            active.dut = Dut(unit["serial"], unit["part"], unit["attempt"])
    elif getattr(config.option, "dist", "no") != "no":
        active.xdist = "controller"


def _resolve(config: pytest.Config) -> Active | None:
    """The run's settings and station (None: no station selected, the plugin stays idle)."""
    resolved = options.resolve(config)
    if resolved.station.value is None:
        return None
    from pytest_litmus.hooks import LitmusPluginManager

    return Active(
        station=resolved.load_station(),
        data_dir=resolved.data_dir.value,
        mock=resolved.mock.value,
        lock_timeout=resolved.lock_timeout.value,
        sources=resolved.sources,
        hooks=LitmusPluginManager(),
        settings=resolved,
    )


def _station_fixtures(active: Active) -> types.ModuleType:
    """A plugin module with ``station``, ``measure`` and one session-scoped fixture per role, named after it.

    None of them asks for ``request`` or ``pytestconfig``: pytest builds a new
    ``request`` fixture definition each time one is asked for, for every test
    whose closure holds it (~10 us each). ``measure`` finds the running test
    through :class:`PerTestPlugin` instead.
    """
    config = active.station
    module = types.ModuleType(f"pytest_litmus.roles[{config.id}]")

    def station() -> Station:
        if active.connection is None:
            pytest.fail(f"litmus: the session of station {config.id!r} is not open", pytrace=False)
        return active.connection

    def measure(station: Station) -> Measure:
        return Measure(station, active)

    def dut(station: Station) -> Dut | None:
        return active.dut

    _add_fixtures(module, station=station, measure=measure, dut=dut)

    def make(role: str) -> Any:
        def fixture(station: Station) -> Any:
            try:
                return station.instrument(role)
            except LitmusError as exc:  # a station's problem, not the test's: one line, no traceback
                problem = _station_error(role, exc, active.lock_timeout)
            pytest.fail(problem, pytrace=False)  # outside the except: no "During handling of ..." chain

        fixture._litmus_role = role  # type: ignore[attr-defined]  # how check_role_names knows its own

        fixture.__doc__ = (
            f"The {role!r} instrument of station {config.id!r}: its proxy, opened and locked on first use and "
            f"kept for the session (usable from session fixtures); calls are attributed to the running test."
        )
        return pytest.fixture(scope="session", name=role)(fixture)

    for role in config.roles:
        setattr(module, f"litmus_role_{role}", make(role))
    return module


def _station_error(role: str, exc: LitmusError, lock_timeout: float | None) -> str:
    """The one line a test whose role cannot be had fails with (the same for every test using it)."""
    from pytest_litmus.errors import ResourceInUse

    text = f"litmus: role {role!r}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ResourceInUse) and lock_timeout == 0:
        text += " (the run does not wait for a held instrument: pass --litmus-lock-timeout SECONDS to wait)"
    return text


def _idle_fixtures() -> types.ModuleType:
    """``station`` and ``measure`` of a run without a station: they say how to select one."""
    module = types.ModuleType("pytest_litmus.idle")

    def station() -> Station:
        pytest.fail(
            "no station selected: pass --station ID, set LITMUS_STATION or the litmus_station ini key, "
            "or default_station in litmus.yaml",
            pytrace=False,
        )

    def measure(station: Station) -> Measure:
        raise AssertionError("unreachable: the station fixture fails first")  # pragma: no cover

    def dut(station: Station) -> Dut | None:
        raise AssertionError("unreachable: the station fixture fails first")  # pragma: no cover

    _add_fixtures(module, station=station, measure=measure, dut=dut)
    return module


def _add_fixtures(module: types.ModuleType, **fixtures: Any) -> None:
    """Session-scoped fixtures into a plugin module, with the documentation the user sees in ``--fixtures``."""
    for name, function in fixtures.items():
        function.__doc__ = _FIXTURE_DOCS[name]
        setattr(module, name, pytest.fixture(scope="session", name=name)(function))


_FIXTURE_DOCS = {
    "station": "The session's :class:`~pytest_litmus.station.Station`: instruments by role, events, "
    "locks held for the session.",
    "measure": "``measure(name, value, *, units=None, low=None, high=None)``: record a measurement for the "
    "running test; outside ``low``..``high`` the test fails after its body.",
    "dut": "The unit under test in this process (``Dut(serial, part, attempt)``: ``attempt`` is its unit "
    "attempt), or None when no serial was given (``--dut``, ``LITMUS_DUT``, the ``litmus_dut`` hook).",
}


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    active = config.stash.get(ACTIVE, None)
    if active is None:
        return None
    src = active.sources
    timeout = "none (wait forever)" if active.lock_timeout is None else f"{active.lock_timeout:g} s"
    session = active.connection.session_id if active.connection else "-"
    lines = [
        f"litmus: station {active.station.id} ({active.station.path}) [{src['station']}]",
        f"litmus: mock {'on' if active.mock else 'off'} [{src['mock']}], lock timeout {timeout} [{src['lock_timeout']}]",
        f"litmus: data dir {active.data_dir} [{src['data_dir']}], session {session}",
    ]
    units = [dut for dut in ({active.dut} | set(active.units.values())) if dut is not None]
    if units:
        shown = ", ".join(
            f"{d.serial}" + (f" (part {d.part})" if d.part else "") + f", unit attempt {d.attempt}"
            for d in sorted(units, key=lambda d: d.serial)
        )
        given = active.settings is not None and active.settings.dut.value
        lines.append(f"litmus: unit {shown} [{src['dut'] if given else 'the litmus_dut hook'}]")
    if active.station.limits is not None:
        lines.append(f"litmus: limits {active.station.limits.path} (sha256 {active.station.limits.sha256[:12]})")
    if active.xdist == "controller" and active.server_address:
        lines.append(f"litmus: this process holds the instruments; xdist workers reach them at {active.server_address}")
    return lines


# ---------------------------------------------------------------------- fixtures


class Measure:
    """The ``measure`` fixture's value: call it to record a measurement for the running test."""

    def __init__(self, connection: Station, active: Active) -> None:
        self._connection = connection
        self._active = active

    def __call__(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement:
        """Record ``value`` as ``name``; outside ``low``..``high`` the test fails after its body."""
        __tracebackhide__ = True  # a LimitError points at the test's line, not into litmus
        m = self._connection.measure(name, value, units=units, low=low, high=high)
        item = self._active.item
        if item is None:  # between tests (a session fixture's teardown): recorded, judged by no test
            return m
        item.stash.setdefault(MEASUREMENTS, []).append(m)  # user_properties at the end of the body
        return m

    @property
    def failed(self) -> list[Measurement]:
        """The running test's out-of-limit measurements so far."""
        item = self._active.item
        return [] if item is None else [m for m in item.stash.get(MEASUREMENTS, []) if not m.passed]


@pytest.fixture
def srq(station: Station) -> Generator[Any, None, None]:
    """``srq(instrument, *, ese=1, sre=32, mechanism=None)``: arm service requests, get a waiter.

    ``waiter.wait(timeout=SECONDS)`` returns the status byte once the instrument
    requests service, or raises ``SrqTimeout``. Waiters are closed after the test.
    """
    waiters: list[Any] = []

    def arm(instrument: Any, *, ese: int = 1, sre: int = 32, mechanism: str | None = None) -> Any:
        waiter = station.srq(instrument, ese=ese, sre=sre, mechanism=mechanism)
        waiters.append(waiter)
        return waiter

    yield arm
    for waiter in reversed(waiters):
        waiter.close()


@pytest.fixture
def attach(station: Station) -> Any:
    """``attach(name, data_or_path, mime=None)``: store bytes, a text, a file or a numeric series with the test.

    Kept under the session directory, recorded as an ``Attachment`` event of the
    running test; series are plotted in the HTML report. Returns the event.
    """

    def attach(name: str, data_or_path: Any, mime: str | None = None) -> dict[str, Any]:
        __tracebackhide__ = True
        return station.attach(name, data_or_path, mime)

    return attach


# ---------------------------------------------------------------------- session


def _failure_text(report: pytest.TestReport, *, rerun: bool = False) -> str | None:
    if not (report.failed or rerun):
        return None
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext.strip().splitlines()[-1:]
    text = text if isinstance(text, str) else " ".join(text)
    return text[:1000]


def _test_outcome(reports: dict[str, pytest.TestReport]) -> tuple[str, str | None]:
    """One outcome per test from its phase reports, as pytest's summary counts them."""
    setup, call, teardown = reports.get("setup"), reports.get("call"), reports.get("teardown")
    rerun = next((r for r in reports.values() if str(r.outcome) == "rerun"), None)
    if rerun is not None:  # pytest-rerunfailures runs it again: this attempt is superseded
        return "rerun", _failure_text(rerun, rerun=True)
    if setup is not None and setup.failed:
        return "error", _failure_text(setup)
    if setup is not None and setup.skipped:
        return ("xfailed" if hasattr(setup, "wasxfail") else "skipped"), None
    outcome, message = "passed", None
    if call is not None:
        if call.failed:
            outcome, message = "failed", _failure_text(call)
        elif call.skipped:
            outcome = "xfailed" if hasattr(call, "wasxfail") else "skipped"
        elif hasattr(call, "wasxfail"):
            outcome = "xpassed"
    if teardown is not None and teardown.failed and outcome in ("passed", "xpassed", "xfailed", "skipped"):
        return "error", _failure_text(teardown)
    return outcome, message


def _unrecorded(connection: Station, nodeid: str, *, waiting_too: bool = False) -> str | None:
    """Why ``nodeid``'s records are not on disk (None: they are, or this process cannot know).

    ``waiting_too``: any event still waiting to be written counts (a record made
    now would wait behind it). Tries the waiting events once more first.
    """
    from pytest_litmus.holder import StationConnection

    if not isinstance(connection, StationConnection):  # a joined station (xdist worker): the holder writes
        return None
    connection.flush_events()
    fault = connection.write_fault
    if fault is None:
        return None
    missing = connection.unrecorded(nodeid)
    if not (missing or (waiting_too and fault.pending)):
        return None
    own = ", ".join(f"{n} {kind} event{'s' * (n != 1)}" for kind, n in Counter(missing).items())
    head = f"{own} not written" if own else "its outcome would not be written"
    state = f"{fault.pending} events waiting" + (f", {fault.lost} lost" if fault.lost else "")
    return f"litmus could not record this test: {head} ({state}): cannot write {fault.path}: {fault.reason}"


def _user_properties(measured: list[Measurement]) -> Iterator[tuple[str, object]]:
    """``measurement.NAME`` and its ``.units``, ``.low``, ``.high``, ``.limits``, ``.outcome``, for each measurement."""
    from pytest_litmus.limits import describe_limits, format_number

    for m in measured:
        prefix = f"measurement.{m.name}"
        yield prefix, m.value
        yield f"{prefix}.units", m.units or ""
        yield f"{prefix}.low", "" if m.low is None else format_number(m.low)  # as the terminal prints it
        yield f"{prefix}.high", "" if m.high is None else format_number(m.high)
        if m.limits:
            yield f"{prefix}.limits", describe_limits(m.limits)
        yield f"{prefix}.outcome", m.outcome


def failure_message(lines: list[str], failed: list[Measurement]) -> str:
    """A test's out-of-limits failure from each failed measurement's line; the first line (what pytest's
    short summary and ``litmus show`` print) is the first measurement's, and says how many more follow."""
    lines = list(lines)
    if len(lines) > 1:
        others = ", ".join(m.name for m in failed[1:])
        lines[0] += f"; {len(lines) - 1} more out of limits: {others}"
    return "\n".join(lines)


def _drop_properties(properties: list[tuple[str, object]], ours: Any) -> None:
    """Remove the tuples in ``ours`` (by identity) from ``properties``, in place."""
    if ours:
        mine = {id(p) for p in ours}
        properties[:] = [p for p in properties if id(p) not in mine]


def _fail_teardown(reports: dict[str, pytest.TestReport], problem: str) -> None:
    """Make a test whose records are missing an error (at teardown), saying why; a failed one stays as it is."""
    teardown = reports.get("teardown") or list(reports.values())[-1]  # a superseded attempt may lack one
    if any(r.failed for r in reports.values()):
        teardown.sections.append(("litmus", problem))
        return
    teardown.outcome = "failed"
    teardown.longrepr = problem


@dataclass(eq=False)
class SessionPlugin:
    """The session's connection: opened at session start, closed with its outcome at the end."""

    active: Active

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        try:
            self._start(session)
        except LitmusError as exc:  # a data dir that refuses the session, say: an error of the run, one line
            if self.active.connection is not None:
                self.active.connection.stop("errored")
            raise pytest.UsageError(f"litmus: {exc}") from None

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
        """Before collecting: no role may take the name of a fixture pytest or a plugin defines."""
        check_role_names(session, self.active.station)
        return (yield)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """After collecting: nor of one a conftest or test module defines (xdist workers: the controller checked)."""
        if self.active.xdist == "off":
            check_role_names(session, self.active.station)

    def _start(self, session: pytest.Session) -> None:
        from pytest_litmus.holder import StationConnection

        a = self.active
        if a.xdist == "worker":
            assert a.server_file is not None
            a.connection = _join(a.server_file, a)
            a.connection.sync_parties = a.workers
            a.connection.dut = a.dut
            return
        units = _units(session.config, a)
        distinct = set(units.values())
        connection = StationConnection(
            a.station,
            data_dir=a.data_dir,
            mock=a.mock,
            hooks=a.hooks,
            argv=[sys.argv[0], *session.config.invocation_params.args],
            lock_timeout=a.lock_timeout,
            dut=distinct.pop() if len(distinct) == 1 else None,  # one unit for the whole session
            locks=a.settings.locks.value if a.settings is not None else "host",
        )
        connection.sync_parties = 1
        connection.start()  # EventsNotWritten (nothing could be recorded) is a LitmusError: run no test
        a.connection = connection
        a.dut = connection.dut
        connection.on_lock_wait = lambda role, resource, holder, timeout: _lock_wait_line(
            session.config, role, resource, holder, timeout
        )
        _junit_suite_properties(session.config, connection, units)
        if connection.dut is not None:  # one unit for the whole session
            a.units = dict.fromkeys(units, connection.dut)
        else:  # one unit per xdist worker: each its own UnitStarted and number
            a.units = {
                slot: None if dut is None else replace(dut, attempt=connection.begin_unit(dut, slot))
                for slot, dut in units.items()
            }
        if a.xdist == "controller":  # before xdist starts the workers (its sessionstart is trylast)
            a.server_address = connection.start_instrument_server()
            a.server_file = connection.instrument_server.path if connection.instrument_server else None

    #: Why events of the session are missing from its file (set at the end of the session).
    lost: EventsNotWritten | None = None
    #: What shipping to the fleet store left pending (one line), or None.
    fleet_pending: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        connection = self.active.connection
        if connection is None:
            return
        try:
            connection.stop(_SESSION_OUTCOME.get(int(exitstatus), "errored"))
        except EventsNotWritten as exc:
            # The record of this run is incomplete: whatever the tests did, it is no verdict.
            # INTERNAL_ERROR (3), not TESTS_FAILED (1): the station failed, not the unit under test.
            self.lost = exc
            if session.exitstatus in _LOSES_TO_LOST_EVENTS:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            if session.config.pluginmanager.get_plugin("terminalreporter") is None:
                print(f"litmus: {exc}", file=sys.stderr)
        finally:
            self._ship(session, connection)

    def _ship(self, session: pytest.Session, connection: Station) -> None:
        """Ship the ended session to the fleet store, if one is set (never fails the run: docs/fleet.md)."""
        settings = self.active.settings
        url = settings.fleet.value if settings is not None else None
        if url is None or self.active.xdist == "worker":
            return
        from pytest_litmus.fleet.after import ship_after_session

        self.fleet_pending = ship_after_session(url, self.active.data_dir, connection.session_id)
        if self.fleet_pending and session.config.pluginmanager.get_plugin("terminalreporter") is None:
            print(self.fleet_pending, file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        failed = [
            (report.nodeid, line)
            for report in terminalreporter.stats.get("failed", [])
            for line in getattr(report, "litmus_failed", None) or ()
        ]
        if failed and self.active.xdist != "worker":
            terminalreporter.write_sep("=", "litmus: measurements out of limits", red=True)
            for nodeid, line in failed:
                terminalreporter.write_line(f"{nodeid}: {line}")
        if self.lost is not None:
            terminalreporter.write_line(f"litmus: {self.lost}", red=True, bold=True)
        if self.fleet_pending is not None:
            terminalreporter.write_line(self.fleet_pending, yellow=True)


def check_role_names(session: pytest.Session, config: StationConfig) -> None:
    """A :class:`pytest.UsageError` if a role has the name of a fixture defined elsewhere.

    A role is a fixture of its name, registered after pytest's own and the
    plugins': a role ``tmp_path`` would replace pytest's ``tmp_path`` in every
    test. Asks pytest's fixture manager, so plugin and conftest fixtures count too.
    """
    roles = set(config.roles)
    for fixturedef in _all_fixture_defs(session):
        role = getattr(fixturedef, "argname", None)
        func = getattr(fixturedef, "func", None)
        if role in roles and getattr(func, "_litmus_role", None) != role:
            raise pytest.UsageError(
                f"litmus: {config.path}: instruments.{role}: expected a role name that is not already a fixture, "
                f"got {role!r}, the name of pytest fixture {role!r} defined in {_defined_in(func, fixturedef)}; "
                f"a role becomes a fixture of its name and would replace it: rename the role"
            )


def _all_fixture_defs(session: pytest.Session) -> list[Any]:
    """Every fixture definition pytest's fixture manager knows (private API: pytest 9, then pytest 8)."""
    manager = getattr(session, "_fixturemanager", None)
    every = getattr(manager, "_get_all_fixture_defs", None)
    if callable(every):
        return list(every())
    by_name: dict[str, list[Any]] = getattr(manager, "_arg2fixturedefs", {})
    return [fixturedef for fixturedefs in by_name.values() for fixturedef in fixturedefs]


def _defined_in(func: Any, fixturedef: Any) -> str:
    """Where a fixture function comes from: its file and line, else its module or node id."""
    try:
        import inspect

        return f"{inspect.getsourcefile(func)}:{inspect.getsourcelines(func)[1]}"
    except (TypeError, OSError):
        return str(getattr(func, "__module__", None) or getattr(fixturedef, "baseid", "") or "a plugin")


def _units(config: pytest.Config, active: Active) -> dict[str, Dut | None]:
    """The unit of each slot (``main``, or each xdist worker), before any instrument is touched.

    The ``litmus_dut`` hook is asked with output capture off, so an operator
    prompt (``input()``) or a scanner's messages reach the terminal.
    """
    from pytest_litmus.dut import MAIN_SLOT

    slots = _xdist_slots(config) if active.xdist == "controller" else [MAIN_SLOT]
    capture = config.pluginmanager.get_plugin("capturemanager")
    station = active.station.id

    def ask(slot: str) -> object:
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # stdin too, so input() reads the terminal
        try:
            return active.hooks.hook.litmus_dut(station=station, slot=slot)
        except Exception as exc:  # a scanner that is unplugged, say: the run stops, saying so
            raise LitmusError(f"the litmus_dut hook raised {type(exc).__name__}: {exc}") from exc
        finally:
            if capture is not None:  # as pytest leaves it at session start: output free, stdin guarded
                capture.resume_global_capture()
                capture.suspend_global_capture()

    assert active.settings is not None
    return active.settings.units(active.station, slots, ask)  # checks the serials against dut_pattern


def _lock_wait_line(
    config: pytest.Config, role: str, resource: str, holder: Mapping[str, Any], timeout: float | None
) -> None:
    """One terminal line while a held instrument is awaited (output capture is set aside for it)."""
    from pytest_litmus.errors import describe_holder

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    limit = "as long as it takes" if timeout is None else f"up to {timeout:g} s"
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(
            f"litmus: waiting for {role} ({resource}), held by {describe_holder(holder)}; "
            f"{limit} (--litmus-lock-timeout)",
            yellow=True,
        )


def _junit_suite_properties(config: pytest.Config, connection: Station, units: Mapping[str, Dut | None]) -> None:
    """``litmus.station``, ``litmus.session`` and each ``litmus.dut`` on the JUnit file's test suite."""
    from _pytest.junitxml import xml_key  # pytest's own LogXML: what ``record_testsuite_property`` uses

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    xml.add_global_property("litmus.station", connection.config.id)
    xml.add_global_property("litmus.session", connection.session_id)
    for serial in dict.fromkeys(dut.serial for dut in units.values() if dut is not None):
        xml.add_global_property("litmus.dut", serial)


def _xdist_slots(config: pytest.Config) -> list[str]:
    """The worker ids xdist will start (``gw0``, ``gw1``, ...), in order."""
    import xdist.workermanage as manage  # type: ignore[import-untyped]

    parse_specs = getattr(manage, "parse_tx_spec_config", None) or manage.parse_spec_config  # renamed in 3.6
    return [f"gw{i}" for i in range(len(parse_specs(config)))]


def _join(server_file: Path, active: Active) -> Station:
    """A worker's connection into the controller's session."""
    from pytest_litmus.sharing import JoinedStation, ServerInfo

    try:
        info = ServerInfo.load(server_file)
    except (OSError, ValueError, TypeError) as exc:
        raise pytest.UsageError(f"litmus: cannot read the controller's connection file {server_file}: {exc}") from None
    try:
        return JoinedStation(info, hooks=active.hooks, config=active.station).start()
    except LitmusError as exc:  # ServerUnavailable is also an OSError: say what failed, not the file
        raise pytest.UsageError(f"litmus: cannot join the controller's session: {exc}") from None


@dataclass(eq=False)
class XdistController:
    """The xdist controller's hooks: hand workers the instrument server, record crashed tests."""

    active: Active

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.active.server_file is not None:
            node.workerinput[WORKERINPUT_KEY] = str(self.active.server_file)
        dut = self.active.units.get(node.gateway.id)
        if dut is not None:
            node.workerinput[WORKERINPUT_DUT] = {"serial": dut.serial, "part": dut.part, "attempt": dut.attempt}

    @pytest.hookimpl(optionalhook=True, wrapper=True)
    def pytest_handlecrashitem(
        self, crashitem: str, report: pytest.TestReport, sched: Any
    ) -> Generator[None, object, object]:
        """A worker died in a test: it cannot record the outcome, so the controller does."""
        result = yield
        connection = self.active.connection
        if connection is not None and str(report.outcome) != "rerun":
            gateway = getattr(getattr(report, "node", None), "gateway", None)
            connection.emit(
                EventType.TEST_OUTCOME,
                nodeid=crashitem,
                outcome="failed",
                duration=0.0,
                message=str(report.longrepr),
                caller={"worker": getattr(gateway, "id", None)},
            )
        return result


@dataclass(eq=False)
class PerTestPlugin:
    """Per-test hooks, in the process that runs the tests (not an xdist controller)."""

    active: Active
    reports: dict[str, dict[str, pytest.TestReport]] = field(default_factory=dict)
    #: The running test's attempt number (pytest-rerunfailures runs a failed test again).
    attempts: dict[str, int] = field(default_factory=dict)
    #: The test whose protocol runs (its attempts may come and go).
    current: pytest.Item | None = None
    #: Whether passed tests' report sections are shown (``-rP`` / ``-rA``).
    show_passed: bool = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        """Before the test's setup: ``measure`` and the event log attribute to it from here on."""
        self.active.item = self.current = item
        self.attempts = {item.nodeid: 0}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """An attempt begins: once per test, again for each rerun (pytest-rerunfailures calls
        ``logstart`` and ``logfinish`` around each attempt).

        A new attempt starts with no measurements and no JUnit properties of its own.
        """
        attempt = self.attempts.get(nodeid, 0) + 1
        self.attempts[nodeid] = attempt
        self.reports[nodeid] = {}
        item = self.current
        if item is not None and item.nodeid == nodeid:
            self.active.item = item
            if attempt > 1:
                item.stash[MEASUREMENTS] = []
                _drop_properties(item.user_properties, item.stash.get(PROPERTIES, ()))
        if self.active.connection is not None:
            self.active.connection.test_started(nodeid, attempt)

    @pytest.hookimpl(tryfirst=True)  # before others (terminal, junitxml, xdist's worker) see the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reports = self.reports.setdefault(report.nodeid, {})
        reports[report.when] = report
        if any(str(r.outcome) == "rerun" for r in reports.values()):  # a superseded attempt: its properties go
            item = self.active.item
            ours = item.stash.get(PROPERTIES, ()) if item is not None else ()
            _drop_properties(report.user_properties, ours)  # junitxml writes them at teardown, once per test
        if report.when == "setup" and report.failed:
            self._explain_missing_role(report)
        elif report.when == "call" and (report.failed or self.show_passed) and self.active.item is not None:
            measured = self.active.item.stash.get(MEASUREMENTS, None)
            if measured:  # shown with a failure (or -rP / -rA): not worth formatting for every passed test
                report.sections.append(("litmus measurements", "\n".join(m.describe() for m in measured)))
                failed = self.active.item.stash.get(FAILED_LINES, None)
                if failed and report.failed:  # for the terminal summary (xdist sends it to the controller)
                    report.litmus_failed = failed  # type: ignore[attr-defined]
        elif report.when == "teardown":
            self._finish(report.nodeid)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.reports.get(nodeid):  # an attempt without a teardown report (pytest-rerunfailures < 16 after a rerun)
            self._finish(nodeid)
        self.active.item = None
        self.reports.pop(nodeid, None)

    def _finish(self, nodeid: str) -> None:
        """Record ``TestOutcome`` (from the reports, before the teardown report is shown); a test whose
        records cannot be written does not pass: its teardown fails, saying why."""
        connection = self.active.connection
        if connection is None:
            return
        reports = self.reports.get(nodeid, {})
        problem = _unrecorded(connection, nodeid, waiting_too=True)  # the outcome would wait behind them
        if problem:
            _fail_teardown(reports, problem)
        outcome, message = _test_outcome(reports)
        connection.test_finished(nodeid, outcome, sum(r.duration for r in reports.values()), message)
        self.reports[nodeid] = {}  # this attempt is recorded
        if not problem:
            problem = _unrecorded(connection, nodeid)
            if problem:
                _fail_teardown(reports, problem)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            result = yield
        finally:  # JUnit's <property> elements: the measurements so far, set before the call's report is made
            measured = item.stash.get(MEASUREMENTS, [])
            properties = list(_user_properties(measured))
            item.stash[PROPERTIES] = properties
            item.user_properties.extend(properties)
            failed = [m for m in measured if not m.passed]
            item.stash[FAILED_LINES] = [m.failure_line() for m in failed]  # also for the call's report
        if failed:
            pytest.fail(failure_message(item.stash[FAILED_LINES], failed), pytrace=False)
        connection = self.active.connection
        problem = _unrecorded(connection, item.nodeid, waiting_too=True) if connection is not None else None
        if problem:
            pytest.fail(problem, pytrace=False)
        return result

    def _explain_missing_role(self, report: pytest.TestReport) -> None:
        """A missing fixture in a station run is most likely a role the station lacks: say so.

        The first line of pytest's own message is replaced in the report's
        ``FixtureLookupErrorRepr.errorstring``, whose formatting is stable across
        pytest versions, unlike the exception's.
        """
        argname = getattr(report.longrepr, "argname", None)
        errorstring = getattr(report.longrepr, "errorstring", None)
        if not argname or not isinstance(errorstring, str):
            return
        first, _, rest = errorstring.partition("\n")
        if f"fixture '{argname}' not found" not in first:
            return
        st = self.active.station
        hint = (
            f"fixture {argname!r} not found: station {st.id!r} ({st.path}) has no role {argname!r}; "
            f"its roles are: {', '.join(st.roles)}"
        )
        report.longrepr.errorstring = f"{hint}\n{rest}"  # type: ignore[union-attr]


@pytest.fixture
def prompt(station: Station, pytestconfig: pytest.Config) -> Any:
    """``prompt(text, *, choices=None, timeout=None)``: ask the operator, return the answer.

    Shown as a dialog on the station page when one is open (``litmus page``), else
    asked on the terminal when stdin is one; recorded as ``PromptAsked`` and
    ``PromptAnswered`` events. ``PromptTimeout`` after ``timeout`` seconds;
    ``PromptUnavailable`` with no page and no terminal (docs/page.md).
    """
    from pytest_litmus.prompts import ask, read_terminal

    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def terminal(text: str, choices: list[str] | None, timeout: float | None) -> str | None:
        if capture is None:
            return read_terminal(text, choices, timeout)
        with capture.global_and_fixture_disabled():  # stdout and stderr, and then stdin, back to the terminal
            capture.suspend_global_capture(in_=True)
            return read_terminal(text, choices, timeout)

    def prompt(text: str, *, choices: list[str] | None = None, timeout: float | None = None) -> str:
        __tracebackhide__ = True
        return ask(
            station.emit,
            data_dir=station.data_dir,
            station=station.config.id,
            text=text,
            choices=choices,
            timeout=timeout,
            nodeid=station.nodeid,
            terminal=terminal,
        )

    return prompt
