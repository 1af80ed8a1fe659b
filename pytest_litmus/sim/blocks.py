"""Program message units with IEEE 488.2 arbitrary block data (7.7.6), and block answers.

A block argument is ``#<n><length><bytes>`` (definite length: ``n`` digits of
length, 1-9) or ``#0<bytes>`` (indefinite: to the end of the message). Its
bytes are never decoded and never split at ``;`` or the terminator. ``#``
followed by a letter (``#H1F``, ``#B101``, ``#Q17``) is a non-decimal number,
left to the text matchers. Quoted strings are not split at ``;`` either.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["MAX_BLOCK", "BadUnit", "BlockUnit", "Unit", "definite", "pack", "split_units"]

#: The longest block accepted (bytes); a longer one is a command error and the rest of its message is discarded.
MAX_BLOCK = 1 << 24
INVALID_BLOCK = '-161,"Invalid block data;{}"'
INVALID_CHARACTER = '-101,"Invalid character"'

_QUOTES = (0x22, 0x27)
_HASH = 0x23
_DIGITS = range(0x30, 0x3A)


class BlockUnit(NamedTuple):
    """A program message unit whose argument is a block: ``header`` (upper-cased) and the raw ``payload``."""

    header: str
    payload: bytes


class BadUnit(NamedTuple):
    """A unit that cannot be parsed: the SCPI ``error`` it queues (a command error)."""

    error: str


Unit = bytes | BlockUnit | BadUnit


class _Truncated(Exception):
    """The message ended inside a definite-length block: more bytes are on their way."""


def split_units(message: bytes, delimiter: bytes) -> list[Unit] | None:
    """The units of ``message`` (terminator removed), stripped; ``None`` while a definite block is incomplete."""
    units: list[Unit] = []
    start = i = 0
    n = len(message)
    step = len(delimiter)
    while i < n:
        c = message[i]
        if c in _QUOTES:
            close = message.find(message[i : i + 1], i + 1)
            i = n if close < 0 else close + 1
        elif step and message.startswith(delimiter, i):
            units.append(message[start:i].strip())
            i = start = i + step
        elif c == _HASH and i + 1 < n and message[i + 1] in _DIGITS:
            try:
                unit, i = _block(message, start, i, delimiter)
            except _Truncated:
                return None
            units.append(unit)
            start = i
        else:
            i += 1
    if start < n:
        units.append(message[start:].strip())
    return units


def _block(message: bytes, start: int, at: int, delimiter: bytes) -> tuple[Unit, int]:
    """The unit holding the block at ``at`` and where the next unit starts."""
    n = len(message)
    words = message[start:at].split()
    header = words[0] if words else b""
    if not header or not header.isascii():
        return BadUnit('-113,"Undefined header"' if header else INVALID_BLOCK.format("no header")), _after(
            message, at, delimiter
        )
    digits = message[at + 1] - 0x30
    if digits == 0:  # indefinite length: the rest of the message
        return BlockUnit(header.decode().upper(), message[at + 2 :]), n
    count = message[at + 2 : at + 2 + digits]
    if len(count) < digits or not count.isdigit():
        return BadUnit(
            INVALID_BLOCK.format(f"length {count.decode('ascii', 'replace')!r} is not {digits} digits")
        ), _after(message, at + 2, delimiter)
    length = int(count)
    if length > MAX_BLOCK:
        return BadUnit(INVALID_BLOCK.format(f"length {length} over the limit {MAX_BLOCK}")), n
    begin = at + 2 + digits
    end = begin + length
    if end > n:
        raise _Truncated
    rest = end
    while rest < n and message[rest] in b" \t\r\n":
        rest += 1
    if rest < n and not message.startswith(delimiter, rest):
        return BadUnit(INVALID_BLOCK.format(f"{n - end} bytes past the declared length {length}")), _after(
            message, rest, delimiter
        )
    return BlockUnit(header.decode().upper(), message[begin:end]), min(n, rest + len(delimiter))


def _after(message: bytes, at: int, delimiter: bytes) -> int:
    """Where the unit after the one at ``at`` starts (the end of the message if none)."""
    found = message.find(delimiter, at) if delimiter else -1
    return len(message) if found < 0 else found + len(delimiter)


def definite(payload: bytes) -> bytes:
    """``payload`` as a definite-length block: ``#<n><length><payload>``."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def pack(datatype: str, values: Sequence[float], big_endian: bool = False) -> bytes:
    """``values`` packed as ``struct`` ``datatype`` (``h``, ``f``, ...), as PyVISA's ``query_binary_values`` reads them."""
    return struct.pack(f"{'>' if big_endian else '<'}{len(values)}{datatype}", *values)
