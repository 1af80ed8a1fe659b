"""The ``litmus`` command: who holds which instrument, and what each session did.

Each subcommand is a module of this package exposing ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int`` as the default. Modules are
discovered, so a new subcommand is a new file.

Errors end a command here, as one line on stderr, never a traceback: a bad
argument or setting, a damaged file (:class:`~pytest_litmus.errors.CorruptFile`),
or a file that cannot be read exit 2; other litmus errors exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from pytest_litmus.errors import CorruptFile, InvalidName, LitmusError, StationConfigError

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
    except (InvalidName, CorruptFile, StationConfigError) as exc:  # a bad argument or value, a damaged file
        return _error(exc, EXIT_USAGE)
    except LitmusError as exc:
        return _error(exc, EXIT_ERROR)
    except (OSError, ValueError, RecursionError) as exc:  # a file that cannot be read, or is not what it should be
        return _error(exc, EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    return code


def _error(exc: BaseException, code: int) -> int:
    """Print ``exc`` as one line on stderr (with its notes); returns ``code``."""
    if isinstance(exc, OSError) and not isinstance(exc, LitmusError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    text = "; ".join([text.splitlines()[0] if text else text, *getattr(exc, "__notes__", [])])
    print(f"litmus: error: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
