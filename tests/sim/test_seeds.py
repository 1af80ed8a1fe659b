"""The PyVISA snippets of the seed guides (resource locking; events and SRQ), run against the simulator.

Each snippet is the guide's text; only its resource manager line is replaced
(:func:`run`). The two-script locking case runs as two real processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytest_litmus.backoff import Backoff
from tests.sim.conftest import SIMS

SEEDS_SIM = SIMS / "seeds.yaml"
RM_LINE = "rm = pyvisa.ResourceManager()"
DMM = "TCPIP0::192.168.1.50::inst0::INSTR"

# -- 000: resource locking ----------------------------------------------------------------

EXCLUSIVE = """
import pyvisa
rm = pyvisa.ResourceManager()
dmm = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
dmm.timeout = 10000
try:
    dmm.lock_excl(timeout=5000)
    dmm.write("*RST")
    dmm.write("CONF:VOLT:DC 10, 0.001")
    voltage = float(dmm.query("READ?"))
    print(f"DC Voltage: {voltage:.6f} V")
    dmm.unlock()
finally:
    dmm.close()
    rm.close()
"""

LOCK_CONTEXT = """
import pyvisa
rm = pyvisa.ResourceManager()
dmm = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
dmm.timeout = 10000
try:
    with dmm.lock_context(timeout=5000):
        dmm.write("CONF:VOLT:DC")
        voltage = float(dmm.query("READ?"))
        print(f"Voltage: {voltage:.6f} V")
        dmm.write("CONF:RES")
        resistance = float(dmm.query("READ?"))
        print(f"Resistance: {resistance:.2f} ohm")
    # Lock released here, even if an exception was raised
finally:
    dmm.close()
    rm.close()
"""

SHARED = """
import pyvisa
rm = pyvisa.ResourceManager()
dmm = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
try:
    with dmm.lock_context(timeout=5000, requested_key="monitor_group"):
        # Multiple scripts using the same key can hold this lock
        idn = dmm.query("*IDN?")
        stb = dmm.read_stb()
        print(f"Instrument: {idn.strip()}")
        print(f"Status byte: {stb:#04x}")
finally:
    dmm.close()
    rm.close()
"""

SCRIPT_A = """
import pyvisa
import time
rm = pyvisa.ResourceManager()
dmm = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
dmm.timeout = 10000
try:
    with dmm.lock_context(timeout=10000):
        dmm.write("*RST")
        dmm.write("CONF:VOLT:DC 10, 0.0001")
        dmm.write("SAMP:COUN 50")
        dmm.write("TRIG:SOUR IMM")
        dmm.write("INIT")
        time.sleep(2)
        data = dmm.query("FETC?")
        values = [float(v) for v in data.strip().split(",")]
        print(f"Measured {len(values)} samples, mean: {sum(values)/len(values):.6f} V")
finally:
    dmm.close()
    rm.close()
"""

SCRIPT_B = """
import pyvisa
rm = pyvisa.ResourceManager()
dmm = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
try:
    with dmm.lock_context(timeout=5000, requested_key="status_monitor"):
        idn = dmm.query("*IDN?")
        err = dmm.query("SYST:ERR?")
        print(f"Instrument: {idn.strip()}")
        print(f"Error queue: {err.strip()}")
finally:
    dmm.close()
    rm.close()
"""

# -- 002: events and SRQ --------------------------------------------------------------------

POLLING = """
import pyvisa

rm = pyvisa.ResourceManager()
inst = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")

try:
    inst.write("MEAS:VOLT:DC?")
    # Blocks until measurement completes
    result = inst.read()
    print(f"Voltage: {result.strip()} V")
finally:
    inst.close()
"""

WAIT_ON_EVENT = """
import pyvisa
from pyvisa import constants

rm = pyvisa.ResourceManager()
inst = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")
inst.timeout = 30000

try:
    inst.write("*RST")
    inst.write("*CLS")

    # Enable SRQ on operation complete (bit 5 of SRE)
    inst.write("*ESE 1")    # OPC sets ESR bit 0
    inst.write("*SRE 32")   # ESR summary enables SRQ

    # Enable SRQ event handling
    inst.enable_event(
        constants.EventType.service_request,
        constants.EventMechanism.queue,
    )

    # Start a slow measurement
    inst.write("CONF:VOLT:DC 10, 0.0001")
    inst.write("SAMP:COUN 100")
    inst.write("INIT")
    inst.write("*OPC")  # Set OPC when measurement finishes

    # Block until the instrument fires SRQ (up to timeout)
    response = inst.wait_on_event(
        constants.EventType.service_request, timeout=25000
    )
    print(f"SRQ received, event type: {response.event.event_type}")

    # Read the status byte to confirm
    stb = inst.read_stb()
    print(f"Status byte: {stb:#04x}")

    # Fetch the results
    data = inst.query("FETC?")
    values = [float(v) for v in data.strip().split(",")]
    print(f"Got {len(values)} readings, mean: {sum(values)/len(values):.6f} V")

    inst.disable_event(
        constants.EventType.service_request,
        constants.EventMechanism.queue,
    )
finally:
    inst.close()
    rm.close()
"""

# The guide passes handle_srq straight to install_handler and uninstalls with the
# arguments swapped; PyVISA wants the handler wrapped first (Resource.wrap_handler)
# and install_handler returns the user handle, on any backend. Those two lines differ.
HANDLER = """
import pyvisa
from pyvisa import constants
import threading

done = threading.Event()

def handle_srq(resource, event, user_handle):
    stb = resource.read_stb()
    print(f"SRQ fired, status byte: {stb:#04x}")
    done.set()
    return constants.StatusCode.success

rm = pyvisa.ResourceManager()
inst = rm.open_resource("TCPIP0::192.168.1.50::inst0::INSTR")

try:
    inst.write("*RST")
    inst.write("*CLS")
    inst.write("*ESE 1")
    inst.write("*SRE 32")

    wrapped = inst.wrap_handler(handle_srq); user_handle = inst.install_handler(
        constants.EventType.service_request, wrapped
    )
    inst.enable_event(
        constants.EventType.service_request,
        constants.EventMechanism.handler,
    )

    inst.write("CONF:VOLT:DC")
    inst.write("INIT")
    inst.write("*OPC")

    done.wait(timeout=20)
    if done.is_set():
        result = inst.query("FETC?")
        print(f"Voltage: {float(result.strip().split(',')[0]):.6f} V")
    else:
        print("Timed out waiting for SRQ")

    inst.disable_event(
        constants.EventType.service_request,
        constants.EventMechanism.handler,
    )
    inst.uninstall_handler(
        constants.EventType.service_request, wrapped, user_handle
    )
finally:
    inst.close()
    rm.close()
"""


def with_simulator(snippet: str, sim: Path, *, fresh: bool) -> str:
    """The snippet with its resource manager line (the only change) on the simulator of ``sim``."""
    assert snippet.count(RM_LINE) == 1
    call = f"resource_manager({str(sim)!r}{', fresh=True' if fresh else ''})"
    return snippet.replace(RM_LINE, f"import pytest_litmus.sim; rm = pytest_litmus.sim.{call}")


def run(snippet: str, capsys: Any) -> list[str]:
    """Run a snippet in this process on a fresh simulator; its printed lines."""
    exec(compile(with_simulator(snippet, SEEDS_SIM, fresh=True), "<seed>", "exec"), {"__name__": "__seed__"})
    return capsys.readouterr().out.splitlines()


def test_exclusive_lock(capsys: Any) -> None:
    assert run(EXCLUSIVE, capsys) == ["DC Voltage: 1.234567 V"]


def test_lock_context(capsys: Any) -> None:
    assert run(LOCK_CONTEXT, capsys) == ["Voltage: 1.234567 V", "Resistance: 1.23 ohm"]


def test_shared_lock(capsys: Any) -> None:
    assert run(SHARED, capsys) == ["Instrument: LITMUS,SEED-DMM,0,1.0", "Status byte: 0x00"]


def test_polling(capsys: Any) -> None:
    assert run(POLLING, capsys) == ["Voltage: 1.234567 V"]


def test_wait_on_event(capsys: Any) -> None:
    from pyvisa import constants

    assert run(WAIT_ON_EVENT, capsys) == [
        f"SRQ received, event type: {constants.EventType.service_request}",
        "Status byte: 0x60",
        "Got 3 readings, mean: 1.250000 V",
    ]


def test_installed_handler(capsys: Any) -> None:
    assert run(HANDLER, capsys) == ["SRQ fired, status byte: 0x60", "Voltage: 1.250000 V"]


# -- the two scripts, as two processes ------------------------------------------------------


def script(tmp_path: Path, name: str, snippet: str, sim: Path) -> Path:
    path = tmp_path / name
    path.write_text(with_simulator(snippet, sim, fresh=False), encoding="utf-8")
    return path


def test_script_b_waits_for_script_a_in_another_process(tmp_path: Path, monkeypatch: Any) -> None:
    """A holds the exclusive lock across its measurement; B, started meanwhile, waits, then reads."""
    from pyvisa import constants

    from pytest_litmus.sim import resource_manager

    sim = tmp_path / "seeds.yaml"  # a file of its own, and its lock files under tmp_path: this test's alone
    shutil.copy(SEEDS_SIM, sim)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    out = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    with out.open("ab") as sink:
        a = subprocess.Popen([sys.executable, str(script(tmp_path, "a.py", SCRIPT_A, sim))], stdout=sink, env=env)
        watcher = resource_manager(sim, fresh=True)  # another instrument in this process: sees A as another holder
        try:
            dmm = watcher.open_resource(DMM)
            poll = Backoff(first=0.001, cap=0.02).start(30)
            while dmm.lock_state != constants.AccessModes.exclusive_lock:
                assert a.poll() is None and not poll.expired, "script A never took its lock"
                poll.sleep()
        finally:
            watcher.close()
        b = subprocess.Popen([sys.executable, str(script(tmp_path, "b.py", SCRIPT_B, sim))], stdout=sink, env=env)
        assert (a.wait(timeout=60), b.wait(timeout=60)) == (0, 0)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "Measured 3 samples, mean: 1.250000 V",
        "Instrument: LITMUS,SEED-DMM,0,1.0",
        'Error queue: 0,"No error"',
    ]
