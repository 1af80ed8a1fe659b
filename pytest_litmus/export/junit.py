"""A session record as JUnit XML, shaped like pytest's ``--junitxml`` output.

One ``<testsuite>`` per unit, with the properties ``station``, ``session`` and
``dut``; one ``<testcase>`` per test, describing its final attempt only (an
earlier attempt adds nothing but an ``attempts`` property). Each counted
measurement is a set of ``measurement.NAME*`` properties, as the plugin writes
them, with limits printed as the terminal prints them. Characters XML cannot
hold (control characters, lone surrogates) are written as ``\\xNN`` text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from pytest_litmus.export._common import iso_time, split_nodeid, value_text
from pytest_litmus.limits import format_number
from pytest_litmus.records import SessionRecord, TestRecord, UnitRecord

__all__ = ["render"]

#: Characters XML 1.0 cannot hold (pytest's junitxml escapes the same way).
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _ILLEGAL.sub(lambda c: f"\\x{ord(c.group()):02x}", text)


def _properties(parent: ET.Element, items: Iterator[tuple[str, str]]) -> None:
    props = None
    for name, value in items:
        if props is None:
            props = ET.SubElement(parent, "properties")
        ET.SubElement(props, "property", name=_clean(name), value=_clean(value))


def _measurements(test: TestRecord) -> Iterator[tuple[str, str]]:
    if test.earlier:
        yield "attempts", str(test.final.attempt)
    for m in test.measurements:
        prefix = f"measurement.{m.name}"
        yield prefix, value_text(m.value)
        yield f"{prefix}.units", m.units or ""
        yield f"{prefix}.low", "" if m.low is None else format_number(m.low)
        yield f"{prefix}.high", "" if m.high is None else format_number(m.high)
        yield f"{prefix}.limits", m.limits_text
        yield f"{prefix}.outcome", m.outcome
        if m.marginal:
            yield f"{prefix}.marginal", "true"


def _testcase(suite: ET.Element, test: TestRecord) -> str:
    """Add the test's ``<testcase>``; returns what it counts as (``tests``, ``failures``, ...)."""
    classname, name = split_nodeid(test.nodeid)
    time = test.duration if test.duration is not None else 0.0
    case = ET.SubElement(suite, "testcase", classname=_clean(classname), name=_clean(name), time=f"{time:.3f}")
    _properties(case, _measurements(test))
    message = _clean(test.message or "")
    first = message.splitlines()[0] if message else ""
    outcome = test.outcome
    if outcome == "failed":
        ET.SubElement(case, "failure", message=first).text = message
        return "failures"
    if outcome == "error":
        ET.SubElement(case, "error", message=first).text = message
        return "errors"
    if outcome in ("skipped", "xfailed"):
        kind = "pytest.xfail" if outcome == "xfailed" else "pytest.skip"
        ET.SubElement(case, "skipped", type=kind, message=first).text = message
        return "skipped"
    if outcome is None:
        ET.SubElement(case, "error", message="no outcome recorded (the session did not end it)")
        return "errors"
    return "tests"


def _suite(root: ET.Element, record: SessionRecord, unit: UnitRecord) -> None:
    suite = ET.SubElement(root, "testsuite", name=_clean(f"litmus {unit.dut}" if unit.dut is not None else "litmus"))
    props = [("station", record.station or ""), ("session", record.id), ("dut", unit.dut or "")]
    if unit.part:
        props.append(("dut_part", unit.part))
    if unit.unit_attempt is not None:
        props.append(("unit_attempt", str(unit.unit_attempt)))
    props.append(("verdict", unit.verdict))
    _properties(suite, iter(props))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for test in unit.tests:
        counts[_testcase(suite, test)] += 1
    time = sum(t.duration or 0.0 for t in unit.tests)
    total = sum(counts.values())
    suite.attrib.update(
        errors=str(counts["errors"]),
        failures=str(counts["failures"]),
        skipped=str(counts["skipped"]),
        tests=str(total),
        time=f"{time:.3f}",
        timestamp=iso_time(record.start),
        hostname=_clean(record.host or ""),
    )


def render(record: SessionRecord) -> str:
    """The XML document (UTF-8 declared)."""
    root = ET.Element("testsuites", name="pytest-litmus")
    for unit in record.units:
        _suite(root, record, unit)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
