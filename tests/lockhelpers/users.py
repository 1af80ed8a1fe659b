"""Run lock holders, the CLI and session writers as other OS users (the tests run as root).

Two unprivileged users share a data dir through a group: the holder user
(``daemon``, or ``bin``/``sys``) and ``nobody``; the shared group is ``users``
(gid 100 on Debian and most others). Each runs under ``setpriv`` with its own
primary group and the shared group as a supplementary one, as an operator added
to the station's group would be. ``setpriv`` execs the command, so the pid the
test sees is the holder's own (``runuser`` forks and is not used).

:func:`require` skips a test where this cannot run (not root, no setpriv, no
such users), but fails it under ``CI=true``: CI runs as root and must run them.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_GROUP = "users"
OTHER_USER = "nobody"
HOLDER_USERS = ("daemon", "bin", "sys")
#: Hang guard only: a CLI run that takes this long has failed the test.
PATIENCE = 60.0


def holder_user() -> str:
    """The first of :data:`HOLDER_USERS` this system has."""
    for name in HOLDER_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return ""


def shared_gid() -> int:
    return grp.getgrnam(SHARED_GROUP).gr_gid


def as_user(name: str, *, in_group: bool = True) -> list[str]:
    """A command prefix running as ``name`` with its own primary group (and the shared one, ``in_group``)."""
    entry = pwd.getpwnam(name)
    groups = f"--groups={shared_gid()}" if in_group else "--clear-groups"
    # setpriv itself execs the command: an `env` in between could not reach a Python under /root (0700).
    # The environment stays root's ($USER=root): the holder must name its user by uid, not by $USER.
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", groups]


@functools.lru_cache(maxsize=1)
def _problem() -> str:
    """Why these tests cannot run here ("" if they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root, to run holders as other users"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to run holders as other users"
    if not holder_user():
        return f"needs one of the users {', '.join(HOLDER_USERS)}"
    try:
        pwd.getpwnam(OTHER_USER)
        shared_gid()
    except KeyError as exc:
        return f"needs the user {OTHER_USER} and the group {SHARED_GROUP}: {exc}"
    probe = subprocess.run(
        [*as_user(OTHER_USER), sys.executable, "-c", "import pytest_litmus"],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd="/",
    )
    if probe.returncode != 0:
        return (
            f"user {OTHER_USER} cannot run {sys.executable} and import pytest_litmus "
            f"(make the checkout and the virtualenv world-readable): {probe.stderr.strip()[-300:]}"
        )
    return ""


def require() -> None:
    """Skip (fail under ``CI=true``) unless tests can run holders as other users."""
    problem = _problem()
    if not problem:
        return
    reason = f"multi-user lock tests: {problem}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: this must run in CI)", pytrace=False)
    pytest.skip(reason)


def run_cli(user: str, data_dir: Path, *args: str, in_group: bool = True) -> subprocess.CompletedProcess[str]:
    """``litmus --data-dir DATA_DIR ARGS`` as ``user``."""
    return subprocess.run(
        [
            *as_user(user, in_group=in_group),
            sys.executable,
            "-m",
            "pytest_litmus.cli",
            "--data-dir",
            str(data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=str(data_dir),
    )


def run_python(user: str, script: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT ARGS`` as ``user`` under ``umask``."""
    return subprocess.run(
        [*as_user(user), sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd="/",
        umask=umask,
    )


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777
