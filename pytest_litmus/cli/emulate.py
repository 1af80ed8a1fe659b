"""``litmus emulate SIMFILE``: serve a simulated instrument as raw SCPI over TCP."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, NoReturn

from pytest_litmus.cli._args import port

EXIT_OK = 0


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulate",
        help="serve a simulated instrument as raw SCPI over TCP (127.0.0.1 unless --host is given)",
        description=(
            "Serve one simulated instrument of SIMFILE as newline-terminated SCPI over TCP. "
            "Prints the VISA resource to open (TCPIP0::HOST::PORT::SOCKET) on the first line of stdout."
        ),
    )
    parser.add_argument("simfile", metavar="SIMFILE", help="pyvisa-sim simulation file (with optional litmus: keys)")
    parser.add_argument("--port", type=port, default=0, help="TCP port 1..65535 (default 0: a free port, printed)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; other addresses only when given)"
    )
    parser.add_argument("--resource", default=None, help="which resource of SIMFILE to serve (needed if several)")
    parser.set_defaults(func=run)


def _terminate(_signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from pytest_litmus.sim.emulate import Emulator

    emulator = Emulator(args.simfile, resource=args.resource, host=args.host, port=args.port)
    # Before the ready line: a supervisor may send SIGTERM the moment it reads it.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        print(emulator.visa_resource, flush=True)
        print(
            f"litmus emulate: serving {emulator.resource} of {args.simfile}; Ctrl-C stops", file=sys.stderr, flush=True
        )
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
    return EXIT_OK
