"""The pytest glue: ``--station`` into a session, role fixtures, measurements, outcomes.

This package is the ``pytest11`` entry point: its options, ``pytest_configure`` and the report
header, and the fixtures pytest finds on this module (``srq``, ``attach``, ``prompt``, from
:mod:`.fixtures`). Without a station (no ``--station``, ``LITMUS_STATION``, ``litmus_station`` or
``default_station``) the plugin registers nothing beyond its options and its fixtures
(``station``, ``measure`` and ``dut`` say how to select one): no VISA import, no file written,
no per-test hook, and neither :mod:`.session` nor :mod:`.pertest` is imported. With one,
``pytest_configure`` registers the station's fixtures, the session's hooks (:mod:`.session`)
and the per-test hooks (:mod:`.pertest`).

Under pytest-xdist the controller holds the session: its instruments, locks and
event log, served to the workers by an instrument server whose connection file
reaches them in ``workerinput``. Each worker joins that session
(a :class:`~pytest_litmus.sharing.JoinedStation`), so one run is one session directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import options
from pytest_litmus.errors import LitmusError
from pytest_litmus.plugin.active import ACTIVE, WORKERINPUT_DUT, WORKERINPUT_KEY, Active
from pytest_litmus.plugin.fixtures import _idle_fixtures, _station_fixtures
from pytest_litmus.plugin.fixtures import attach as attach  # pytest collects fixtures from the entry-point
from pytest_litmus.plugin.fixtures import prompt as prompt  # module's attributes: these three are defined
from pytest_litmus.plugin.fixtures import srq as srq  # in .fixtures, and registered here, once


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
    from pytest_litmus.plugin.session import SessionPlugin, XdistController  # imported only for a station

    config.pluginmanager.register(SessionPlugin(active), "litmus-session")
    if active.xdist == "controller":
        config.pluginmanager.register(XdistController(active), "litmus-xdist-controller")
    else:  # the process that runs the tests records them
        from pytest_litmus.plugin.pertest import PerTestPlugin

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
