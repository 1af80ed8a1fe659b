"""Which VISA interface classes have service-request events and a serial poll, as NI-VISA has them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyvisa import constants

__all__ = ["SRQ_INTERFACES", "STB_INTERFACES", "STRS_INTERFACES", "read_stb_kind"]

Interface = constants.InterfaceType
#: VI_EVENT_SERVICE_REQ: these (interface, resource class) pairs only; elsewhere VI_ERROR_INV_EVENT.
SRQ_INTERFACES = frozenset(
    {
        (Interface.gpib, "INSTR"),
        (Interface.gpib_vxi, "INSTR"),
        (Interface.tcpip, "INSTR"),
        (Interface.usb, "INSTR"),
        (Interface.vxi, "INSTR"),
    }
)
#: viReadSTB is a serial poll on these.
STB_INTERFACES = SRQ_INTERFACES
#: viReadSTB here only when VI_ATTR_IO_PROT is VI_PROT_4882_STRS (sent as ``*STB?``); USB RAW and others never.
STRS_INTERFACES = frozenset({(Interface.asrl, "INSTR"), (Interface.tcpip, "SOCKET")})


def read_stb_kind(interface: tuple[Any, str], io_protocol: Callable[[], Any]) -> str | None:
    """``"serial_poll"``, ``"stb_query"`` (488.2 strings) or None (VI_ERROR_NSUP_OPER) for a session."""
    if interface in STB_INTERFACES:
        return "serial_poll"
    if interface in STRS_INTERFACES and io_protocol() == constants.IOProtocol.protocol4882_strs:
        return "stb_query"
    return None
