"""A lock holder in its own process, driven over stdin/stdout by the locking tests.

    python holder.py DATA_DIR RESOURCE [--mode M] [--timeout S|none] [--role R] [--session S] [--locks URL]

Prints one JSON object a line: ``waiting`` (first attempt found it held),
``locked``, ``in_use`` (with the pickled error) or ``error`` (any other
``LitmusError``: type, message, pickled error); then obeys stdin lines:
``check`` (prints ``ok`` or ``lost`` with the pickled error), ``release``
(prints ``released``); end of input releases and exits.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import sys
from typing import Any

from pytest_litmus.errors import LitmusError, LockLost, ResourceInUse
from pytest_litmus.locks import LockOwner


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}, default=str), flush=True)


def pickled(exc: BaseException) -> str:
    return base64.b64encode(pickle.dumps(exc)).decode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("resource")
    parser.add_argument("--mode", default="exclusive")
    parser.add_argument("--timeout", default="0")
    parser.add_argument("--role", default="")
    parser.add_argument("--session", default="child")
    parser.add_argument("--locks", default="host", help="host, or a lock server's postgresql:// URL")
    args = parser.parse_args()
    timeout = None if args.timeout == "none" else float(args.timeout)
    owner = LockOwner(args.data_dir, session=args.session, station="cell-7")
    if args.locks != "host":
        from pytest_litmus.locks import PostgresBackend

        owner.backend = PostgresBackend(args.locks)
    try:
        lease = owner.acquire(
            args.resource,
            mode=args.mode,
            timeout=timeout,
            role=args.role,
            on_contended=lambda holder: say("waiting", holder=holder),
        )
    except ResourceInUse as exc:
        say("in_use", holder=exc.holder, waited=exc.waited, error=pickled(exc))
        return 1
    except LitmusError as exc:
        say("error", type=type(exc).__name__, message=str(exc), error=pickled(exc))
        return 1
    say("locked", waited=lease.waited, record=lease.record)
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            try:
                lease.check()
                say("ok")
            except LockLost as exc:
                say("lost", by=exc.by, error=pickled(exc))
        elif command == "release":
            owner.release_all()
            say("released")
    owner.release_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
