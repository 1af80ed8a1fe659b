"""A unit's record as the JSON OpenHTF's ``OutputToJSON`` writes (openhtf 1.6), for tools that read those.

The shape is OpenHTF's ``TestRecord`` after ``convert_to_base_types``, with
attachments inline (base64 ``data``, ``sha1``, ``mimetype``), as
``json_factory.convert_test_record_to_json`` gives it. A session's unit is one
OpenHTF record; each test is a phase (named by its nodeid). An earlier attempt
of a test is a phase of the same name before the final one, with outcome
``SKIP`` and result ``REPEAT``: what OpenHTF records when a phase repeats.
A measurement name taken twice in one test gets ``_2``, ``_3``, ... (OpenHTF
names are unique within a phase). Litmus facts without an OpenHTF field
(session, host, part, unit attempt, limits file) are in ``metadata["litmus"]``;
an attachment that cannot be read is left out and named in ``log_records``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import zlib
from pathlib import Path
from typing import Any

from pytest_litmus.limits import format_number
from pytest_litmus.records import Attachment, Attempt, MeasurementRecord, SessionRecord, UnitRecord

__all__ = ["UNITS", "UNIT_ALIASES", "phase", "render", "to_openhtf"]

#: Unit suffixes with OpenHTF's UnitDescriptor (name, UNECE code); others get ``(units, None, units)``.
UNITS: dict[str, tuple[str, str]] = {
    "V": ("volt", "VLT"),
    "A": ("ampere", "AMP"),
    "W": ("watt", "WTT"),
    "Hz": ("hertz", "HTZ"),
    "\u2126": ("ohm", "OHM"),
    "s": ("second [unit of time]", "SEC"),
    "°C": ("degree Celsius", "CEL"),
    "dB": ("decibel", "2N"),
    "%": ("percent", "P1"),
}
#: Other spellings of those suffixes.
UNIT_ALIASES = {"\u03a9": "\u2126", "Ohm": "\u2126", "ohm": "\u2126", "degC": "°C", "sec": "s"}
_TEST_OUTCOMES = {"passed": "PASS", "skipped": "PASS", "failed": "FAIL", "errored": "ERROR", "terminated": "ABORTED"}
#: pytest outcome -> (phase outcome, phase result).
_PHASES: dict[str | None, tuple[str, Any]] = {
    "passed": ("PASS", "CONTINUE"),
    "xpassed": ("PASS", "CONTINUE"),
    "failed": ("FAIL", "FAIL_AND_CONTINUE"),
    "skipped": ("SKIP", "SKIP"),
    "xfailed": ("SKIP", "SKIP"),
    "rerun": ("SKIP", "REPEAT"),
    None: ("ERROR", None),  # no outcome: what OpenHTF records for a phase that timed out
}
#: ``PhaseOptions`` as OpenHTF writes its defaults.
_OPTIONS = {
    "timeout_s": None,
    "run_if": None,
    "requires_state": False,
    "force_repeat": False,
    "repeat_on_measurement_fail": False,
    "repeat_on_timeout": False,
    "repeat_limit": None,
    "run_under_pdb": False,
    "phase_name_case": "KEEP",
    "stop_on_measurement_fail": False,
}


def _millis(ts: float | None) -> int | None:
    return round(ts * 1000) if ts is not None else None


def _units(units: str) -> dict[str, str | None]:
    suffix = UNIT_ALIASES.get(units, units)
    if suffix in UNITS:
        name, code = UNITS[suffix]
        return {"name": name, "code": code, "suffix": suffix}
    return {"name": units, "code": None, "suffix": units}


def _validators(m: MeasurementRecord) -> list[str]:
    """The limits in OpenHTF's validator wording (``3.2 <= x <= 3.4``, ``'x' matches /^OK$/``)."""
    limits = m.limits or {}
    equals = limits.get("equals")
    if isinstance(equals, str):
        return [f"'x' matches /^{re.escape(equals)}$/"]
    if equals is not None:
        return [f"'x' is equal to '{equals}'"]
    nominal, percent = limits.get("nominal"), limits.get("tolerance_percent")
    if isinstance(nominal, (int, float)) and isinstance(percent, (int, float)):
        return [f"'x' is within {format_number(percent)}% of {format_number(nominal)}."]
    if m.low is None and m.high is None:
        return []
    if m.low is not None and m.low == m.high:
        return [f"x == {format_number(m.low)}"]
    text = ""
    if m.low is not None:
        text += f"{format_number(m.low)} {'<=' if limits.get('low_inclusive', True) is not False else '<'} "
    if isinstance(limits.get("marginal_low"), (int, float)):
        text += f"Marginal:{format_number(limits['marginal_low'])} <= "
    text += "x"
    if isinstance(limits.get("marginal_high"), (int, float)):
        text += f" <= Marginal:{format_number(limits['marginal_high'])}"
    if m.high is not None:
        text += f" {'<=' if limits.get('high_inclusive', True) is not False else '<'} {format_number(m.high)}"
    return [text]


def _measurement(name: str, m: MeasurementRecord) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "outcome": "FAIL" if m.outcome == "failed" else "PASS"}
    validators = _validators(m)
    if validators:
        found["validators"] = validators
    if m.units:
        found["units"] = _units(m.units)
    found["measured_value"] = m.value
    return found


def _attachments(items: tuple[Attachment, ...], directory: Path, logs: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    root = directory.resolve()
    for item in items:
        path = (directory / item.path).resolve()
        try:
            if not path.is_relative_to(root):
                raise PermissionError(f"{item.path!r} is outside the session directory")
            data = path.read_bytes()
        except (OSError, ValueError) as exc:
            logs.append(_log(item.ts, f"attachment {item.name!r} left out: {exc}"))
            continue
        found[_unique(item.name, found)] = {
            "mimetype": item.mime or "application/octet-stream",
            "sha1": hashlib.sha1(data).hexdigest(),
            "data": base64.standard_b64encode(data).decode("ascii"),
        }
    return found


def _log(ts: float | None, message: str) -> dict[str, Any]:
    return {
        "level": logging.WARNING,
        "logger_name": "pytest_litmus.export.openhtf",
        "source": "openhtf.py",
        "lineno": 0,
        "timestamp_millis": _millis(ts) or 0,
        "message": message,
    }


def _unique(name: str, taken: dict[str, Any]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def phase(nodeid: str, attempt: Attempt, directory: Path, logs: list[dict[str, Any]]) -> dict[str, Any]:
    """One attempt of a test as an OpenHTF ``PhaseRecord`` dict."""
    outcome, result = _PHASES.get(attempt.outcome, ("ERROR", None))
    phase_result: Any = result
    if attempt.outcome not in _PHASES:  # error, or an outcome litmus does not know: OpenHTF's exception form
        phase_result = {"exc_type": str(attempt.outcome), "exc_val": attempt.message or "", "exc_tb": ""}
    measurements: dict[str, Any] = {}
    for m in attempt.measurements:
        name = _unique(m.name, measurements)
        measurements[name] = _measurement(name, m)
    start = _millis(attempt.start) or 0
    end = _millis(attempt.end)
    if end is None and attempt.duration is not None:
        end = start + round(attempt.duration * 1000)
    return {
        "measurements": measurements,
        "options": {"name": None, **_OPTIONS},
        "diagnosers": [],
        "subtest_name": None,
        "start_time_millis": start,
        "end_time_millis": end,
        "attachments": _attachments(attempt.attachments, directory, logs),
        "diagnosis_results": [],
        "failure_diagnosis_results": [],
        "result": {"phase_result": phase_result},
        "outcome": outcome,
        "marginal": any(m.marginal for m in attempt.measurements) if outcome == "PASS" else None,
        "descriptor_id": zlib.crc32(nodeid.encode("utf-8", "surrogatepass")),
        "name": nodeid,
        "codeinfo": {"name": nodeid.rpartition("::")[2], "docstring": None, "sourcecode": ""},
    }


def to_openhtf(record: SessionRecord, unit: UnitRecord) -> dict[str, Any]:
    """``unit`` of ``record`` as an OpenHTF test record dict (what ``OutputToJSON`` serializes)."""
    logs: list[dict[str, Any]] = []
    phases = [phase(t.nodeid, a, record.directory, logs) for t in unit.tests for a in t.attempts]
    if unit.measurements or unit.attachments:  # measured outside any test: a phase of their own
        loose = Attempt(1, "passed", None, None, record.start, record.end, unit.measurements, unit.attachments)
        phases.insert(0, phase("session", loose, record.directory, logs))
    outcome = _TEST_OUTCOMES.get(unit.verdict, "ERROR")
    details = [
        {"code": t.outcome, "description": t.message or ""}
        for t in unit.tests
        if t.outcome in ("failed", "error") and t.message
    ]
    if unit.verdict == "incomplete":
        details.append({"code": "incomplete", "description": "the session or a test did not end"})
    counted = unit.all_measurements(superseded=False)
    return {
        "dut_id": unit.dut,
        "start_time_millis": _millis(record.start) or 0,
        "end_time_millis": _millis(record.end),
        "outcome": outcome,
        "outcome_details": details,
        "marginal": any(m.marginal for m in counted) if outcome == "PASS" else None,
        "metadata": {
            "test_name": record.station or "pytest-litmus",
            "config": {},
            "litmus": {
                "session": record.id,
                "host": record.host,
                "user": record.user,
                "mock": record.mock,
                "dut_part": unit.part,
                "unit_attempt": unit.unit_attempt,
                "slot": unit.slot,
                "verdict": unit.verdict,
                "limits_file": record.limits_file,
                "limits_sha256": record.limits_sha256,
            },
        },
        "phases": phases,
        "subtests": [],
        "branches": [],
        "diagnosers": [],
        "diagnoses": [],
        "log_records": logs,
        "station_id": record.station or "",
        "code_info": {"name": "", "docstring": None, "sourcecode": ""},
    }


def render(record: SessionRecord) -> str:
    """The JSON text of the session's one unit; :class:`ValueError` if it has several (choose one: ``--dut``)."""
    if len(record.units) != 1:
        duts = ", ".join(str(u.dut) for u in record.units)
        raise ValueError(
            f"session {record.id} has {len(record.units)} units ({duts}): an OpenHTF record is one; choose it with --dut"
        )
    return json.dumps(to_openhtf(record, record.units[0]), indent=1, allow_nan=False) + "\n"
