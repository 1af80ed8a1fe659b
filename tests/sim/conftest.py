"""Fixtures of the simulator and SRQ tests: a fresh simulator on ``sims/dmm.yaml``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SIMS = Path(__file__).resolve().parent / "sims"
DMM_SIM = SIMS / "dmm.yaml"
GPIB = "GPIB0::22::INSTR"
LAN = "TCPIP0::192.168.1.50::inst0::INSTR"
NO_EVENTS = "GPIB0::23::INSTR"
NO_SERIAL_POLL = "GPIB0::24::INSTR"
SOCKET = "TCPIP0::192.168.1.50::5025::SOCKET"
ASRL = "ASRL1::INSTR"
USB = "USB0::0x1234::0x5678::SN1::INSTR"
USB_RAW = "USB0::0x1234::0x5678::SN1::RAW"


@pytest.fixture
def rm() -> Iterator[Any]:
    """A resource manager on a fresh simulator of ``sims/dmm.yaml``."""
    from pytest_litmus.sim import resource_manager

    manager = resource_manager(DMM_SIM, fresh=True)
    yield manager
    manager.close()


@pytest.fixture
def dmm(rm: Any) -> Any:
    """The simulated DMM on GPIB, terminations set, 2 s timeout."""
    return rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
