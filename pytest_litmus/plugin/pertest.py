"""The per-test hooks: each test's attempts, measurements, JUnit properties and recorded outcome.

:class:`PerTestPlugin` runs in the process that runs the tests (not an xdist controller): it
attributes measurements and events to the running test and attempt (pytest-rerunfailures runs
make several), fails a test whose measurements are out of limits after its body, adds the
measurements to the JUnit report, and records one ``TestOutcome`` per attempt from its phase
reports; a test whose records cannot be written does not pass. Imported only when a station is
selected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_litmus.holder import StationConnection
from pytest_litmus.plugin.active import FAILED_LINES, MEASUREMENTS, PROPERTIES, Active

if TYPE_CHECKING:
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.station import Station


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


Property = tuple[str, object]
#: By ``(name, units, limit texts)``: a measurement's ``measurement.NAME`` property name, its
#: ``.units``, ``.low``, ``.high`` and ``.limits`` properties, and its ``.outcome`` property by outcome.
_PROPERTY_SETS: dict[tuple[Any, ...], tuple[str, tuple[Property, ...], dict[str, Property]]] = {}
_PROPERTY_SETS_SIZE = 4096


def _user_properties(measured: list[Measurement]) -> list[Property]:
    """``measurement.NAME`` and its ``.units``, ``.low``, ``.high``, ``.limits``, ``.outcome``, for each measurement.

    Only the value changes from one test to the next: the rest is made once per name, units and limits.
    """
    from pytest_litmus.limittext import limit_texts

    properties: list[Property] = []
    for m in measured:
        name, units = m.name, m.units
        texts = limit_texts(m.low, m.high, m.limits)  # as the terminal prints them
        key = (name, units, texts) if type(name) is str and (units is None or type(units) is str) else None
        kept = None if key is None else _PROPERTY_SETS.get(key)
        if kept is None:
            kept = _property_set(name, units, texts)
            if key is not None:
                if len(_PROPERTY_SETS) >= _PROPERTY_SETS_SIZE:
                    _PROPERTY_SETS.clear()
                _PROPERTY_SETS[key] = kept
        properties.append((kept[0], m.value))
        properties += kept[1]
        outcome = m.outcome
        properties.append(kept[2].get(outcome) or (f"{kept[0]}.outcome", outcome))
    return properties


def _property_set(
    name: str, units: str | None, texts: tuple[str, str, str | None]
) -> tuple[str, tuple[Property, ...], dict[str, Property]]:
    prefix = f"measurement.{name}"
    low, high, limits = texts
    fixed: list[Property] = [(f"{prefix}.units", units or ""), (f"{prefix}.low", low), (f"{prefix}.high", high)]
    if limits is not None:
        fixed.append((f"{prefix}.limits", limits))
    outcomes: dict[str, Property] = {o: (f"{prefix}.outcome", o) for o in ("passed", "failed")}
    return prefix, tuple(fixed), outcomes


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


class PerTestPlugin:
    """Per-test hooks, in the process that runs the tests (not an xdist controller)."""

    # A plain class, not a dataclass: defining one costs ~0.5 ms of every run's start-up.
    def __init__(self, active: Active, *, show_passed: bool = False) -> None:
        self.active = active
        self.reports: dict[str, dict[str, pytest.TestReport]] = {}
        #: The running test's attempt number (pytest-rerunfailures runs a failed test again).
        self.attempts: dict[str, int] = {}
        #: The test whose protocol runs (its attempts may come and go).
        self.current: pytest.Item | None = None
        #: The tests whose running attempt has a ``rerun`` report (pytest-rerunfailures runs it again).
        self.reran: set[str] = set()
        #: Whether passed tests' report sections are shown (``-rP`` / ``-rA``).
        self.show_passed = show_passed

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        """Before the test's setup: ``measure`` and the event log attribute to it from here on.

        The previous test's measurements go: recorded, reported, and not worth keeping
        alive (and scanned by the garbage collector) for the rest of the session.
        """
        previous = self.current
        if previous is not None:
            stash = previous.stash
            keys: tuple[pytest.StashKey[Any], ...] = (MEASUREMENTS, PROPERTIES, FAILED_LINES)
            for key in keys:
                if key in stash:
                    del stash[key]
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
        self.reran.discard(nodeid)
        item = self.current
        if item is not None and item.nodeid == nodeid:
            self.active.item = item
            item.stash[MEASUREMENTS] = self.active.measured = []
            if attempt > 1:
                _drop_properties(item.user_properties, item.stash.get(PROPERTIES, ()))
        if self.active.connection is not None:
            self.active.connection.test_started(nodeid, attempt)

    @pytest.hookimpl(tryfirst=True)  # before others (terminal, junitxml, xdist's worker) see the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reports = self.reports.setdefault(report.nodeid, {})
        reports[report.when] = report
        if str(report.outcome) == "rerun":  # pytest-rerunfailures sets it; not in pytest's Literal
            self.reran.add(report.nodeid)
        if report.nodeid in self.reran:  # a superseded attempt: its properties go
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
        self.active.item = self.active.measured = None
        self.reports.pop(nodeid, None)
        self.reran.discard(nodeid)

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
            properties = _user_properties(measured)
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
