"""The page's view of its station, shared by every open browser: the state it pushes, the run it controls.

:class:`PageHub` knows no web framework: :mod:`pytest_litmus.page.app` serves
it. :meth:`PageHub.refresh` (a few times a second, off the event loop) updates
the session index, the lock holders and the run, and bumps :attr:`version`
when the state a page shows changed.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from pytest_litmus.config import StationConfig
from pytest_litmus.errors import LitmusError
from pytest_litmus.page.runner import DEFAULT_COMMAND, RunController, check_serial
from pytest_litmus.page.sessions import SessionEntry, SessionIndex, day_yield
from pytest_litmus.prompts import announce_page, check_prompt_id, withdraw_page, write_answer

__all__ = ["SHOWN", "PageHub"]

#: The event types a page shows (instrument calls, the bulk of a session, stay in the file).
SHOWN = (
    "SessionStarted",
    "SessionEnded",
    "UnitStarted",
    "TestStarted",
    "TestOutcome",
    "Measurement",
    "EventsLost",
    "PromptAsked",
    "PromptAnswered",
    "PromptExpired",
)
RECENT_UNITS = 10


class PageHub:
    """One station's page: its sessions, locks and run, and the browsers watching them."""

    def __init__(
        self,
        station: StationConfig,
        *,
        data_dir: Path,
        pattern: re.Pattern[str] | None = None,
        pattern_source: str | None = None,
        command: str | None = None,
        cwd: Path | None = None,
        grace: float | None = None,
    ) -> None:
        self.station = station
        self.data_dir = Path(data_dir)
        self.pattern = pattern
        self.pattern_source = pattern_source
        env = dict(os.environ)
        env.setdefault("LITMUS_HOME", str(self.data_dir))
        self.runs = RunController(
            station.id,
            command or DEFAULT_COMMAND,
            data_dir=self.data_dir,
            cwd=cwd or Path.cwd(),
            env=env,
            **({} if grace is None else {"grace": grace}),
        )
        self.index = SessionIndex(self.data_dir, station.id)
        self.url = ""
        #: Bumped whenever :attr:`state_json` changes.
        self.version = 0
        self.state_json = "{}"
        self.current: SessionEntry | None = None
        self._clients = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state

    def refresh(self) -> None:
        """Re-read sessions and locks; a new :attr:`state_json` (and :attr:`version`) if anything changed."""
        self.runs.changed.clear()
        self.index.refresh()
        self.current = self.index.newest()
        text = json.dumps(self.state(), sort_keys=True, default=str)
        with self._lock:
            if text != self.state_json:
                self.state_json = text
                self.version += 1

    def state(self) -> dict[str, Any]:
        recent = self.index.recent(RECENT_UNITS)
        return {
            "station": self.station.id,
            "description": self.station.description,
            "instruments": self._instruments(),
            "pattern": self.pattern.pattern if self.pattern is not None else None,
            "command": self.runs.command,
            "run": self.runs.run.to_dict() if self.runs.run is not None else None,
            "session": self.current.id if self.current is not None else None,
            "expected_tests": self.index.expected_tests(),
            "units": [e.to_dict() for e in recent],
            "yield": day_yield(list(self.index.entries.values())),
        }

    def _instruments(self) -> list[dict[str, Any]]:
        from pytest_litmus.locks import list_locks

        try:
            states = list_locks(self.data_dir)
        except (LitmusError, OSError):
            states = []
        by_resource = {s.resource: s for s in states}
        shown = []
        for role, config in self.station.instruments.items():
            lock = by_resource.get(config.resource)
            holders = [] if lock is None or lock.state != "held" else lock.holders
            shown.append(
                {
                    "role": role,
                    "resource": config.resource,
                    "holders": [
                        {k: h.get(k) for k in ("pid", "user", "host", "session", "station", "nodeid", "since")}
                        for h in holders
                    ],
                }
            )
        return shown

    # ------------------------------------------------------------------ actions

    def start(self, serial: object) -> dict[str, Any]:
        """Check ``serial`` against the station's pattern, then start the run (SerialRefused, RunInProgress)."""
        checked = check_serial(serial, self.pattern, self.pattern_source)
        return self.runs.start(checked).to_dict()

    def stop(self) -> dict[str, Any] | None:
        run = self.runs.stop()
        return None if run is None else run.to_dict()

    def answer(self, prompt: object, answer: object) -> None:
        """Write the operator's answer to ``prompt`` for the test waiting on it (ValueError if malformed)."""
        if not isinstance(answer, str):
            raise ValueError("an answer is a text")
        write_answer(self.data_dir, check_prompt_id(prompt), answer)

    # ------------------------------------------------------------------ browsers

    def attach(self) -> None:
        """A browser opened the page: prompts now come to the page."""
        with self._lock:
            self._clients += 1
            first = self._clients == 1
        if first:
            announce_page(self.data_dir, self.station.id, self.url)

    def detach(self) -> None:
        with self._lock:
            self._clients -= 1
            last = self._clients == 0
        if last:
            withdraw_page(self.data_dir, self.station.id)

    def close(self) -> None:
        """The server is going: stop the run, withdraw the page."""
        withdraw_page(self.data_dir, self.station.id)
        self.runs.close()
