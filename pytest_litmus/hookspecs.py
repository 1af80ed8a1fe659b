"""Hook specifications other plugins implement to subscribe to litmus events.

Inside pytest they are added to pytest's plugin manager by ``pytest_addhooks``,
so a ``conftest.py`` or plugin just defines the function. Outside pytest,
``connect()`` builds a manager of its own with these specs and loads plugins
registered under the ``litmus`` entry-point group.
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
    mutate it. An implementation that raises is reported as a warning and never
    fails the run; the other subscribers still get the event. The event file
    writer is the default implementation (registered as ``litmus-eventlog``).
    """
