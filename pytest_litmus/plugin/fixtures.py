"""The plugin's fixtures: ``station``, ``measure``, ``dut``, one per role, ``srq``, ``attach``, ``prompt``.

A run with a station gets ``station``, ``measure``, ``dut`` and a session-scoped fixture per
role from :func:`_station_fixtures` (a plugin module built for the station); a run without one
gets :func:`_idle_fixtures`, whose ``station`` says how to select one. ``srq``, ``attach`` and
``prompt`` are defined here and re-exported by the entry-point module, where pytest finds them.
"""

from __future__ import annotations

import types
from collections.abc import Generator
from sys import _getframe
from typing import TYPE_CHECKING, Any

import pytest

from pytest_litmus.errors import LitmusError
from pytest_litmus.plugin.active import MEASUREMENTS

if TYPE_CHECKING:
    from pytest_litmus.dut import Dut
    from pytest_litmus.measurements import Measurement
    from pytest_litmus.plugin.active import Active
    from pytest_litmus.station import Station


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


class Measure:
    """The ``measure`` fixture's value: call it to record a measurement for the running test."""

    def __init__(self, connection: Station, active: Active) -> None:
        from pytest_litmus.station import StationBase, frame_line  # not for a run without a station

        self._connection = connection
        self._active = active
        self._frame_line = frame_line
        if isinstance(connection, StationBase):
            self._measure_at = connection.measure_at
        else:  # another implementation of the protocol: its own ``measure`` finds the call site
            self._measure_at = lambda name, value, units, low, high, where: connection.measure(
                name, value, units=units, low=low, high=high
            )

    def __call__(
        self, name: str, value: Any, *, units: str | None = None, low: Any = None, high: Any = None
    ) -> Measurement:
        """Record ``value`` as ``name``; outside ``low``..``high`` the test fails after its body."""
        __tracebackhide__ = True  # a LimitError points at the test's line, not into litmus
        m = self._measure_at(name, value, units, low, high, self._frame_line(_getframe(1)))
        measured = self._active.measured
        if measured is not None:  # None between tests (a session fixture's teardown): judged by no test
            measured.append(m)  # user_properties at the end of the body
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
