"""What ``litmus ship`` and ``litmus fleet`` share: the ``--fleet`` option and the store's URL (not a command: ``_``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_litmus.config import find_project_config
from pytest_litmus.errors import FleetNotConfigured
from pytest_litmus.settings import resolve_setting

__all__ = ["add_fleet_option", "fleet_url"]


def add_fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fleet",
        metavar="URL",
        default=None,
        help="the fleet store's postgresql:// URL (default: LITMUS_FLEET, then fleet: in litmus.yaml)",
    )


def fleet_url(args: argparse.Namespace) -> str:
    """The store's URL: ``--fleet``, ``$LITMUS_FLEET``, ``fleet:`` in litmus.yaml; :class:`FleetNotConfigured` without."""
    resolved: Any = resolve_setting("fleet", (args.fleet, "--fleet"), project=find_project_config(Path.cwd()))
    if resolved.value is None:
        raise FleetNotConfigured()
    return str(resolved.value)
