"""VISA resource names: checked once, compared in one canonical form.

``GPIB::9::INSTR``, ``gpib0::9::INSTR`` and ``GPIB0::9::INSTR`` name one
instrument, and so do a USB address with and without its ``::0::`` interface
number. Everything that compares resource names (a station against its
simulation file, lock files, two roles of one station) compares
:func:`resource_key`, pyvisa's canonical name (``pyvisa.rname``). pyvisa is
imported on first use.
"""

from __future__ import annotations

import functools
import re

__all__ = ["check_resource_name", "resource_key"]

#: A VISA alias (as NI MAX defines them): a plain name, opened as given by the VISA library.
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
#: Parts of a parsed name that are numbers, and their VISA ranges.
_RANGES: dict[str, tuple[int, int, str]] = {
    "board": (0, 65535, "board number"),
    "primary_address": (0, 30, "GPIB primary address"),
    "secondary_address": (0, 30, "GPIB secondary address"),
    "port": (1, 65535, "TCP port"),
    "manufacturer_id": (0, 0xFFFF, "USB manufacturer id"),
    "model_code": (0, 0xFFFF, "USB model code"),
    "usb_interface_number": (0, 255, "USB interface number"),
    "vxi_logical_address": (0, 511, "VXI logical address"),
}


@functools.lru_cache(maxsize=512)
def resource_key(name: str) -> str:
    """The canonical, case-folded form of ``name``: equal for every spelling of one instrument.

    A name pyvisa cannot parse (an alias) is its stripped, upper-cased text.
    """
    text = name.strip().upper()
    try:
        from pyvisa import rname

        return str(rname.to_canonical_name(text)).upper()
    except Exception:  # not a VISA name pyvisa parses: compare the text as given
        return text


def _number(text: str) -> int | None:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        return None


@functools.lru_cache(maxsize=512)
def check_resource_name(name: str) -> str | None:
    """Why ``name`` cannot be a VISA resource name, or None if it can.

    Names pyvisa parses are checked for numbers in range (GPIB addresses 0-30,
    TCP ports 1-65535, ...); a plain name without ``::`` is taken as a VISA
    alias, which only the VISA library can resolve.
    """
    text = name.strip(" ")
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "an empty name or one with control characters (tab, newline, ...)"
    if "::" not in text and _ALIAS.fullmatch(text):
        return None
    from pyvisa import rname

    try:
        parsed = rname.parse_resource_name(text.upper())
    except rname.InvalidResourceName as exc:
        return f"pyvisa cannot parse it: {exc}"
    for part, (low, high, what) in _RANGES.items():
        value = getattr(parsed, part, None)
        if value is None or value == "" or (part == "board" and not str(value).isdigit()):
            continue  # absent, or an ASRL device path as board
        number = _number(str(value))
        if number is None or not low <= number <= high:
            return f"its {what} {value} is not a number from {low} to {high}"
    return None
