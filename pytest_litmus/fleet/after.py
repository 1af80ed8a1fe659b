"""Shipping when a session ends: never an error of the run, bounded in time, one line when something is left.

:func:`ship_after_session` ships the session that just ended, then whatever
else of the data dir is pending (an earlier outage), in a daemon thread that
the caller waits for at most ``budget`` seconds. It returns None when nothing
is left pending, else the one warning line to show. psycopg is imported only
here and only when a store is set.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pytest_litmus.dburl import redact_url
from pytest_litmus.errors import FleetNotMigrated, FleetUnavailable

__all__ = ["BUDGET", "ship_after_session"]

#: Seconds a run waits for shipping at its end, at most (the connect timeout is 3 s).
BUDGET = 20.0


def ship_after_session(url: str, data_dir: Path, session: str, budget: float = BUDGET) -> str | None:
    """Ship ``session`` and then the rest pending; None when nothing is pending, else a warning line."""
    shown = redact_url(url)
    result: list[str | None] = []
    deadline = time.monotonic() + budget

    def work() -> None:
        result.append(_ship(url, shown, Path(data_dir), session, deadline))

    thread = threading.Thread(target=work, name="litmus-fleet-ship", daemon=True)
    thread.start()
    thread.join(budget + 1.0)
    if result:
        return result[0]
    return (
        f"litmus: fleet store {shown}: still shipping after {budget:.0f} s, left to finish in the background;"
        " what is not stored stays pending (litmus ship sends it)"
    )


def _ship(url: str, shown: str, data_dir: Path, session: str, deadline: float) -> str | None:
    try:
        from pytest_litmus.fleet.shipping import pending, ship

        report = ship(url, data_dir, first=session, deadline=deadline)
        if report.error is not None:
            count = len(pending(data_dir))
            what = str(report.error) if isinstance(report.error, FleetNotMigrated) else f"fleet store {shown}: "
            if isinstance(report.error, FleetUnavailable):
                what += f"not shipped ({report.error.reason})"
            return f"litmus: {what}; {_sessions(count)} pending, litmus ship sends them"
    except Exception as exc:  # noqa: BLE001 -- shipping must never fail the run
        return f"litmus: fleet store {shown}: session {session} not shipped ({exc}); litmus ship sends it"
    if not report.pending and not report.failed:
        return None
    refused = "; ".join(f"{s}: {why}" for s, why in report.failed.items())
    return (
        f"litmus: fleet store {shown}: {_sessions(len(report.pending))} still pending"
        + (f" (refused: {refused})" if refused else "")
        + ", litmus ship sends them"
    )


def _sessions(count: int) -> str:
    return f"{count} session{'s' * (count != 1)}"
