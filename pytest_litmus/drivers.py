"""Instrument drivers: a generic SCPI instrument and small typed drivers on top.

A driver is any class whose constructor takes the opened pyvisa resource; a
station names it as ``package.module:Class``. Drivers do plain I/O and hold no
locks: the proxy around them serialises and records every public call.
"""

from __future__ import annotations

from typing import Any

from pytest_litmus.errors import InstrumentError

__all__ = ["Dmm", "PowerSupply", "ScpiInstrument"]

#: ``SYST:ERR?`` entries read at most by :meth:`ScpiInstrument.check_errors`, so a
#: broken instrument that never answers "0, No error" cannot loop forever.
MAX_ERROR_QUEUE = 64


def _parse_error(line: str) -> tuple[int, str]:
    code_text, _, message = line.strip().partition(",")
    try:
        code = int(code_text.strip())
    except ValueError:
        return -1, line.strip()
    return code, message.strip().strip('"')


class ScpiInstrument:
    """Any SCPI instrument: write, read, query, and the IEEE 488.2 common commands."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource

    @property
    def resource_name(self) -> str:
        return str(getattr(self.resource, "resource_name", self.resource))

    def write(self, command: str) -> None:
        self.resource.write(command)

    def read(self) -> str:
        return str(self.resource.read())

    def query(self, command: str) -> str:
        return str(self.resource.query(command))

    def query_float(self, command: str) -> float:
        text = self.query(command).strip()
        try:
            return float(text)
        except ValueError:
            raise InstrumentError(self.resource_name, [(-1, f"{command!r} answered {text!r}, not a number")]) from None

    def idn(self) -> str:
        """The ``*IDN?`` answer, stripped."""
        return self.query("*IDN?").strip()

    def reset(self) -> None:
        """``*RST`` then ``*CLS``: defaults, and empty status and error queues."""
        self.write("*RST")
        self.write("*CLS")

    def clear(self) -> None:
        """Device clear (the bus-level clear pyvisa sends), aborting pending I/O."""
        self.resource.clear()

    def read_stb(self) -> int:
        """The status byte by serial poll."""
        return int(self.resource.read_stb())

    def check_errors(self) -> None:
        """Drain ``SYST:ERR?``; raise :class:`InstrumentError` listing every queued error."""
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_ERROR_QUEUE):
            code, message = _parse_error(self.query("SYST:ERR?"))
            if code == 0:
                break
            errors.append((code, message))
        else:
            errors.append((-1, f"error queue not empty after {MAX_ERROR_QUEUE} reads"))
        if errors:
            raise InstrumentError(self.resource_name, errors)

    def close(self) -> None:
        self.resource.close()


class Dmm(ScpiInstrument):
    """A digital multimeter (SCPI ``MEASure`` subsystem)."""

    def _measure(self, function: str, range_: float | None) -> float:
        suffix = f" {range_:g}" if range_ is not None else ""
        return self.query_float(f"MEAS:{function}?{suffix}")

    def measure_voltage(self, range: float | None = None, *, ac: bool = False) -> float:  # noqa: A002
        """One voltage reading in volts (DC unless ``ac``)."""
        return self._measure("VOLT:AC" if ac else "VOLT:DC", range)

    def measure_current(self, range: float | None = None, *, ac: bool = False) -> float:  # noqa: A002
        """One current reading in amperes (DC unless ``ac``)."""
        return self._measure("CURR:AC" if ac else "CURR:DC", range)

    def measure_resistance(self, range: float | None = None) -> float:  # noqa: A002
        """One 2-wire resistance reading in ohms."""
        return self._measure("RES", range)


class PowerSupply(ScpiInstrument):
    """A single-output programmable DC power supply (SCPI ``SOURce`` / ``OUTPut``)."""

    def set_voltage(self, volts: float) -> None:
        self.write(f"VOLT {volts:g}")

    def set_current(self, amps: float) -> None:
        """The current limit, in amperes."""
        self.write(f"CURR {amps:g}")

    def voltage_setpoint(self) -> float:
        return self.query_float("VOLT?")

    def current_setpoint(self) -> float:
        return self.query_float("CURR?")

    def output(self, on: bool) -> None:
        """Switch the output on or off."""
        self.write(f"OUTP {'ON' if on else 'OFF'}")

    def output_enabled(self) -> bool:
        return self.query("OUTP?").strip().upper() in ("1", "ON")

    def measure_voltage(self) -> float:
        return self.query_float("MEAS:VOLT?")

    def measure_current(self) -> float:
        return self.query_float("MEAS:CURR?")
