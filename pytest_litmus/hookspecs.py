"""Hook specifications other plugins implement to subscribe to litmus events.

Only spec functions live here. :class:`pytest_litmus.hooks.LitmusPluginManager`
adds them; inside pytest it mirrors every pytest plugin and conftest onto itself,
so a ``conftest.py`` just defines the function. Both inside and outside pytest
the manager loads plugins registered under the ``litmus`` entry-point group.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "litmus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def litmus_event(event: dict[str, Any]) -> None:
    """Called once for every event the session records, in ``seq`` order.

    ``event`` has ``seq``, ``ts``, ``session``, ``type`` and the type's fields
    (see docs/events.md). It is the same dict every subscriber sees: do not
    mutate it. Called through pluggy: ``tryfirst``/``trylast`` and ``wrapper=True``
    apply. An implementation that raises is reported as a ``SubscriberWarning``
    and never fails the run; the other subscribers still get the event. The event
    file writer is the default implementation (registered as ``litmus-eventlog``).
    """


@hookspec(firstresult=True)
def litmus_dut(station: str, slot: str) -> Any:
    """The unit under test in ``slot`` of a run on ``station``; the first non-None answer wins.

    Called once per slot before any instrument is touched, when no ``--dut`` /
    ``LITMUS_DUT`` / ``litmus_dut`` ini gives the serial: ``slot`` is ``main``
    without pytest-xdist, else the worker id (``gw0``, ...), and the controller
    asks for every worker (it has the terminal). Return a serial (``str``), a
    mapping ``{"serial": ..., "part": ...}``, a :class:`pytest_litmus.dut.Dut`,
    or None (no unit). A barcode scanner or an operator prompt goes here.
    """
