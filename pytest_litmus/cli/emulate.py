"""``litmus emulate``: serve simulated instruments over TCP (raw SOCKET and HiSLIP).

``litmus emulate SIMFILE`` serves one resource of a simulation file;
``litmus emulate --station ID`` serves every role of a station, each on its own
ports, and ``--write FILE`` writes a station file that reaches them through
pyvisa-py.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_litmus.cli._args import _int, port
from pytest_litmus.errors import StationConfigError

if TYPE_CHECKING:
    from pytest_litmus.sim.emulate import Emulator

EXIT_OK = 0


def _bytes(text: str) -> int:
    return _int(text, "a number of bytes >= 1", lambda n: n >= 1)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulate",
        help="serve simulated instruments over TCP: raw SOCKET and HiSLIP (127.0.0.1 unless --host is given)",
        description=(
            "Serve a simulated instrument of SIMFILE over TCP, as raw SCPI (SOCKET) and HiSLIP: prints the "
            "SOCKET resource on the first line of stdout and the HiSLIP resource on the second. With --station, "
            "serve every role of the station's simulation file, each on its own ports, and print one line per "
            "role: ROLE HISLIP-RESOURCE SOCKET-RESOURCE. Serves until SIGTERM or Ctrl-C (exit 0)."
        ),
    )
    parser.add_argument(
        "simfile", metavar="SIMFILE", nargs="?", help="pyvisa-sim simulation file (with optional litmus: keys)"
    )
    parser.add_argument("--station", metavar="ID", help="serve every role of this station (its simulation: file)")
    parser.add_argument(
        "--write",
        metavar="FILE",
        type=Path,
        help="with --station: write a station file (id: FILE's stem) whose roles are the emulated ones, on pyvisa-py",
    )
    parser.add_argument(
        "--port", type=port, default=0, help="SOCKET port (with --station: the first of consecutive ones); 0: free"
    )
    parser.add_argument(
        "--hislip-port",
        type=port,
        default=0,
        help="HiSLIP port (real instruments: 4880; with --station: the first of consecutive ones); 0: free",
    )
    parser.add_argument(
        "--max-message",
        type=_bytes,
        default=1 << 20,
        help='longest program message in bytes (default 1 MiB); a longer one is answered -223,"Too much data"',
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; other addresses only when given)"
    )
    parser.add_argument("--resource", default=None, help="which resource of SIMFILE to serve (needed if several)")
    parser.set_defaults(func=run)


def _terminate(_signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if (args.simfile is None) == (args.station is None):
        raise StationConfigError(None, "SIMFILE / --station", "one of a simulation file or --station ID", None)
    if args.write is not None and args.station is None:
        raise StationConfigError(None, "--write", "--station ID (a station to derive the file from)", str(args.write))
    if args.station is not None:
        return _run_station(args)
    from pytest_litmus.sim.emulate import Emulator

    emulator = Emulator(
        args.simfile,
        resource=args.resource,
        host=args.host,
        port=args.port,
        hislip_port=args.hislip_port,
        max_message=args.max_message,
    )
    # Before the ready line: a supervisor may send SIGTERM the moment it reads it.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        print(emulator.visa_resource, emulator.hislip_resource, sep="\n", flush=True)
        print(
            f"litmus emulate: serving {emulator.resource} of {args.simfile}; Ctrl-C stops", file=sys.stderr, flush=True
        )
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
    return EXIT_OK


def _run_station(args: argparse.Namespace) -> int:
    from pytest_litmus.settings import load_station
    from pytest_litmus.sim.emustation import serve_station, write_station

    station, _data_dir = load_station(args.station, data_dir=args.data_dir)
    emulators = serve_station(
        station, host=args.host, port=args.port, hislip_port=args.hislip_port, max_message=args.max_message
    )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.write is not None:
            write_station(station, emulators, args.write)  # before the lines: a reader of them finds the file
        for role, emulator in emulators.items():
            print(role, emulator.hislip_resource, emulator.visa_resource, flush=True)
        where = f"; station file {args.write}" if args.write is not None else ""
        print(f"litmus emulate: serving station {station.id}{where}; Ctrl-C stops", file=sys.stderr, flush=True)
        for emulator in emulators.values():
            emulator.start()
        threading.Event().wait()  # until SIGTERM / Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        _close(emulators.values())
    return EXIT_OK


def _close(emulators: Any) -> None:
    each: Emulator
    for each in emulators:
        each.close()
