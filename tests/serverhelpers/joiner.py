"""A process that joins a holder's session with ``connect()`` from ``$LITMUS_SERVER``.

It measures through the holder's DMM as test ``slot-1``, waits for an SRQ armed
in the holder, and prints {"pid", "session", "volts", "status"}.
"""

from __future__ import annotations

import json
import os

from pytest_litmus import connect

with connect() as station:  # $LITMUS_SERVER and $LITMUS_SERVER_FILE, set by the holder
    station.nodeid = "slot-1"
    dmm = station.instrument("dmm")
    volts = dmm.measure_voltage()
    station.measure("rail", volts, units="V", low=3.2, high=3.4)
    waiter = station.srq("dmm")
    dmm.write("INIT")
    dmm.write("*OPC")
    status = waiter.wait(timeout=10)
    waiter.close()
    print(json.dumps({"pid": os.getpid(), "session": station.session_id, "volts": volts, "status": status}), flush=True)
