"""The ``litmus`` command: who holds which instrument, and what each session did.

Each subcommand is a module of this package exposing ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` as the default. Modules are
discovered, so a new subcommand is a new file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from pytest_litmus.errors import InvalidName, LitmusError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litmus", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="litmus data dir (default: data_dir in litmus.yaml, then $LITMUS_HOME, then the user data dir)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except InvalidName as exc:  # a bad argument: a usage error, before any file was touched
        print(f"litmus: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LitmusError as exc:
        print(f"litmus: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
