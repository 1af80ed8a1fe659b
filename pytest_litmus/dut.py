"""The unit under test: its serial and part number, checked before any instrument is touched.

A run tests one unit, or one per slot: under pytest-xdist each worker is a slot
(``gw0``, ``gw1``, ...) and may test its own unit; without xdist the one slot is
``main``. ``--dut SN1,SN2`` gives one serial per worker, in worker order; one
serial is the unit every worker tests. The ``litmus_dut`` hook may supply a unit
per slot instead (a barcode scanner, an operator prompt). See docs/units.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_litmus.errors import LitmusError, StationConfigError

__all__ = [
    "MAIN_SLOT",
    "MAX_SERIAL",
    "Dut",
    "as_dut",
    "check_part",
    "check_pattern",
    "check_serial",
    "parse_serials",
    "resolve_units",
    "slot_dut",
]

#: The longest serial or part number accepted (characters).
MAX_SERIAL = 128
#: The slot of a run without xdist workers.
MAIN_SLOT = "main"

_BAD = re.compile(r"[\x00-\x1f\x7f,]")


class SerialsMismatch(ValueError):
    """More serials than one, and not one per slot."""


@dataclass(frozen=True)
class Dut:
    """One unit under test: ``serial`` (required) and ``part`` (its part number, optional)."""

    serial: str
    part: str | None = None
    #: Which time this unit is tested (1, 2, ...), counted across the data dir's sessions; None until numbered.
    attempt: int | None = None

    def fields(self) -> dict[str, Any]:
        """``dut`` and ``dut_part``, as events carry them."""
        return {"dut": self.serial, "dut_part": self.part}


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {type(value).__name__} {value!r}")
    text = value.strip()  # a scanner ends its line with CR/LF
    if not text:
        raise ValueError(f"{what} must not be empty")
    if len(text) > MAX_SERIAL:
        raise ValueError(f"{what} must be at most {MAX_SERIAL} characters, got {len(text)}")
    bad = _BAD.search(text)
    if bad:
        raise ValueError(f"{what} must not contain control characters or commas, got {text!r}")
    return text


def check_serial(value: object, pattern: re.Pattern[str] | None = None) -> str:
    """``value`` as a serial (surrounding whitespace dropped), or ValueError saying what is wrong."""
    serial = _check_text(value, "a serial number")
    if pattern is not None and pattern.fullmatch(serial) is None:
        raise ValueError(f"serial {serial!r} does not match dut_pattern {pattern.pattern!r}")
    return serial


def check_part(value: object) -> str:
    """``value`` as a part number, or ValueError."""
    return _check_text(value, "a part number")


def check_pattern(path: str | Path | None, key: str, value: object) -> re.Pattern[str]:
    """A ``dut_pattern`` regular expression, compiled; a bad one is a :class:`StationConfigError`."""
    if not isinstance(value, str) or not value:
        raise StationConfigError(path, key, "a regular expression (text) a serial must match whole", value)
    try:
        return re.compile(value)
    except re.error as exc:
        raise StationConfigError(path, key, f"a valid regular expression ({exc})", value) from None


def parse_serials(value: object) -> tuple[str, ...]:
    """``SN1`` or ``SN1,SN2``: one serial per slot (ValueError for a bad one)."""
    if not isinstance(value, str):
        raise ValueError(f"expected serial numbers separated by commas, got {value!r}")
    serials = tuple(check_serial(part) for part in value.split(","))
    if len(set(serials)) != len(serials):
        raise ValueError(f"a serial number is given twice in {value!r}: one unit cannot sit in two slots")
    return serials


def slot_dut(serials: Sequence[str], part: str | None, slot: str, slots: Sequence[str]) -> Dut | None:
    """The unit of ``slot`` among ``slots`` (xdist worker ids in order, or ``[MAIN_SLOT]``).

    No serial: no unit. One serial: every slot tests that unit. Otherwise one
    serial per slot, in order; a count that differs is a ValueError.
    """
    if not serials:
        return None
    if len(serials) == 1:
        return Dut(serials[0], part)
    if len(serials) != len(slots):  # xdist workers are the slots: -n N takes N serials
        raise SerialsMismatch(f"one serial for every slot, or one per slot ({len(slots)}: {', '.join(slots)})")
    return Dut(serials[list(slots).index(slot)], part)


def as_dut(answer: object, part: str | None, pattern: re.Pattern[str] | None, source: str) -> Dut | None:
    """A ``litmus_dut`` hook answer as a checked :class:`Dut` (a LitmusError naming ``source``)."""
    if answer is None:
        return None
    try:
        serial: object
        answer_part: object
        if isinstance(answer, Dut):
            serial, answer_part = answer.serial, answer.part
        elif isinstance(answer, str):
            serial, answer_part = answer, None
        elif isinstance(answer, dict):
            unknown = set(answer) - {"serial", "part"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(map(str, unknown))}: expected 'serial' and 'part'")
            serial, answer_part = answer.get("serial"), answer.get("part")
        else:
            raise ValueError("expected a serial (str), {'serial': ..., 'part': ...} or a Dut")
        return Dut(check_serial(serial, pattern), check_part(answer_part) if answer_part is not None else part)
    except ValueError as exc:
        raise LitmusError(f"{source} answered {answer!r}: {exc}") from None


def resolve_units(
    serials: Sequence[str],
    part: str | None,
    pattern: re.Pattern[str] | None,
    slots: Sequence[str],
    ask: Callable[[str], object],
) -> dict[str, Dut | None]:
    """The unit of every slot: from ``serials`` (``--dut``), else ``ask(slot)`` (the ``litmus_dut`` hook).

    ``serials`` are checked already (``Settings.check_serials`` names their
    source); the hook's answers are checked against ``pattern`` here. Slots may
    share a unit (several workers testing one board).
    """
    if serials:
        return {slot: slot_dut(serials, part, slot, slots) for slot in slots}
    return {slot: as_dut(ask(slot), part, pattern, f"the litmus_dut hook (slot {slot})") for slot in slots}
