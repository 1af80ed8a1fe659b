"""Hand-written event files with the unit-record fields (dut, attempt, rerun, Attachment, UnitStarted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


class Events:
    """Builds one session's ``events.jsonl`` line by line, numbering and stamping each event."""

    def __init__(self, data_dir: Path, session: str = "5e55-0001", *, t0: float = T0) -> None:
        self.session = session
        self.path = data_dir / "sessions" / session / "events.jsonl"
        self.lines: list[str] = []
        self.seq = 0
        self.t0 = t0

    def add(self, type: str, **fields: Any) -> Events:
        self.seq += 1
        event = {"seq": self.seq, "ts": self.t0 + self.seq, "session": self.session, "type": type, **fields}
        self.lines.append(json.dumps(event))  # ASCII: a lone surrogate stays a JSON escape
        return self

    def raw(self, line: str) -> Events:
        self.lines.append(line)
        return self

    def started(self, dut: str | None = None, **fields: Any) -> Events:
        base = {"station": "cell-7", "host": "bench-1", "user": "op", "mock": True, "pid": 1, "dut": dut}
        return self.add("SessionStarted", **(base | fields))

    def test(
        self, nodeid: str, outcome: str, *measured: dict[str, Any], dut: str | None = None, attempt: int = 1
    ) -> Events:
        self.add("TestStarted", nodeid=nodeid, dut=dut, attempt=attempt)
        for m in measured:
            self.measure(nodeid=nodeid, dut=dut, attempt=attempt, **m)
        return self.add(
            "TestOutcome", nodeid=nodeid, outcome=outcome, duration=0.5, message=None, dut=dut, attempt=attempt
        )

    def measure(self, **fields: Any) -> Events:
        base = {"name": "vout", "value": 3.3, "units": "V", "low": 3.2, "high": 3.4, "outcome": "passed"}
        return self.add("Measurement", **(base | fields))

    def ended(self, outcome: str = "passed") -> Events:
        return self.add("SessionEnded", outcome=outcome, counts={})

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(line + "\n" for line in self.lines), encoding="utf-8")
        return self.path


def m(name: str = "vout", value: Any = 3.3, outcome: str = "passed", **fields: Any) -> dict[str, Any]:
    """A measurement's fields."""
    return {"name": name, "value": value, "outcome": outcome, **fields}
