"""The session's hooks: the station session opened at session start and closed with its outcome.

:class:`SessionPlugin` opens the session (or, in an xdist worker, joins the controller's), asks
for the units under test, checks that no role takes another fixture's name, ends the session
with pytest's exit status (a session with lost events is no verdict), ships it to the fleet store
and prints the terminal summary. :class:`XdistController` hands workers the instrument server and
their units, and records tests whose worker crashed. Imported only when a station is selected.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_litmus.errors import EventsNotWritten, LitmusError
from pytest_litmus.eventtypes import EventType
from pytest_litmus.plugin.active import WORKERINPUT_DUT, WORKERINPUT_KEY, Active

if TYPE_CHECKING:
    from pytest_litmus.config import StationConfig
    from pytest_litmus.dut import Dut
    from pytest_litmus.station import SessionOutcome, Station

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


class SessionPlugin:
    """The session's connection: opened at session start, closed with its outcome at the end."""

    def __init__(self, active: Active) -> None:  # a plain class: a dataclass costs start-up time
        self.active = active

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


class XdistController:
    """The xdist controller's hooks: hand workers the instrument server, record crashed tests."""

    def __init__(self, active: Active) -> None:
        self.active = active

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
