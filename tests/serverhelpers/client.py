"""A client of an instrument server. Modes:

hammer N   alternate N queries *IDN? / MEAS:VOLT:DC? on dmm; print {"wrong": k, "calls": n}
hold       take the dmm lock remotely, print {"locked": true}, then wait to be killed
"""

from __future__ import annotations

import json
import sys

from pytest_litmus.server import connect_remote

IDN = "Keysight Technologies,34465A,MY-SIM-0001,A.03.01"
VOLT = "3.3012"

mode = sys.argv[1]
station = connect_remote()  # from $LITMUS_SERVER / $LITMUS_SERVER_FILE
dmm = station.instrument("dmm")
if mode == "hammer":
    n = int(sys.argv[2])
    wrong = 0
    for i in range(n):
        command, expected = ("*IDN?", IDN) if i % 2 else ("MEAS:VOLT:DC?", VOLT)
        wrong += dmm.query(command).strip() != expected
    print(json.dumps({"wrong": wrong, "calls": n}), flush=True)
elif mode == "hold":
    with dmm.lock_context():
        print(json.dumps({"locked": True}), flush=True)
        sys.stdin.read()  # killed here
