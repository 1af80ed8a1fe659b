"""Final test of a power board: identity, rails, supply current.

Run against the simulated station with ``pytest examples --station cell-7 --mock``.
"""

from __future__ import annotations

from typing import Any

import pytest


def test_instruments_identify(dmm: Any, psu: Any) -> None:
    assert "34465A" in dmm.idn()
    assert "HMP4040" in psu.idn()


def test_supply_is_on(powered_board: Any, measure: Any) -> None:
    assert powered_board.output_enabled()
    measure("supply_setpoint", powered_board.voltage_setpoint(), units="V", low=4.95, high=5.05)
    measure("supply_voltage", powered_board.measure_voltage(), units="V", low=4.9, high=5.1)


def test_rail_3v3(powered_board: Any, dmm: Any, measure: Any) -> None:
    measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
    measure("rail_3v3_ripple", dmm.measure_voltage(ac=True), units="V", high=0.01)


def test_supply_current(powered_board: Any, measure: Any) -> None:
    measure("input_current", powered_board.measure_current(), units="A", low=0.05, high=0.25)


def test_triggered_reading_by_srq(powered_board: Any, dmm: Any, srq: Any, measure: Any) -> None:
    """Trigger a reading, sleep until the DMM requests service, then fetch it."""
    done = srq(dmm)  # *CLS, *ESE 1, *SRE 32
    dmm.write("INIT")
    dmm.write("*OPC")
    status = done.wait(timeout=5)
    assert status & 0x40  # RQS: the DMM asked for service
    measure("rail_3v3_triggered", dmm.query_float("FETC?"), units="V", low=3.2, high=3.4)


def test_no_instrument_errors(dmm: Any, psu: Any) -> None:
    dmm.check_errors()
    psu.check_errors()


@pytest.mark.xfail(reason="known issue: 3V3 rail sits above the tightened 3.30 V limit of rev C", strict=True)
def test_rail_3v3_rev_c_limit(powered_board: Any, dmm: Any, measure: Any) -> None:
    measure("rail_3v3_rev_c", dmm.measure_voltage(), units="V", low=3.25, high=3.30)
