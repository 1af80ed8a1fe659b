"""The pytest door to :mod:`pytest_litmus.settings`: options and ini keys, one help text each.

Every setting is a command-line option (``--station``, ``--litmus-*``) and an
ini key (``litmus_*``) on top of its environment variable and ``litmus.yaml``
key; :func:`resolve` hands both to the one resolver.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_litmus import settings
from pytest_litmus.settings import SETTINGS, Settings


def add_options(parser: pytest.Parser) -> None:
    """``--station``, ``--mock``, ``--litmus-*`` in one option group, and their ini keys."""
    group = parser.getgroup("litmus", "test station (pytest-litmus)")
    for s in SETTINGS:
        env = f" [env {s.env}]" if s.env else ""
        if s.flag:
            group.addoption(s.option, action="store_true", default=None, dest=s.dest, help=f"{s.help}{env}")
        else:
            group.addoption(
                s.option, action="store", default=None, dest=s.dest, metavar=s.metavar, help=f"{s.help}{env}"
            )
        parser.addini(s.ini, f"{s.help} (same as {s.option})", type="string", default="")


def resolve(config: pytest.Config) -> Settings:
    """Every setting for this run: option -> environment -> ini -> ``litmus.yaml`` -> default."""
    explicit = {s.name: (config.getoption(s.dest), s.option) for s in SETTINGS}
    ini = settings.IniFile(get=lambda key: str(config.getini(key)), path=config.inipath)
    # pytest's rootdir bounds the search only when an ini file set it; otherwise it is just the
    # arguments' common ancestor (and pytest < 8.1 ignores a pyproject.toml without a pytest table),
    # so the project markers decide, as for connect().
    rootdir = config.rootpath if config.inipath is not None else None
    return settings.resolve(explicit, ini=ini, start=Path(config.invocation_params.dir), rootdir=rootdir)
