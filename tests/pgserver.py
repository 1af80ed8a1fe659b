"""A throw-away PostgreSQL server for the tests: its own cluster in a temp dir, on a free loopback port.

Debian's ``postgresql`` package puts ``initdb``, ``pg_ctl`` and ``postgres`` under
``/usr/lib/postgresql/<version>/bin`` (not on PATH); they are looked up there and on PATH.
PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user the
package creates (``runuser -u postgres``). Authentication is ``trust`` on 127.0.0.1 only.

Where the binaries are missing the ``postgres_url`` fixture skips with the reason, except under
``CI=true``, where it fails: CI must run these tests (``.ci/run`` installs the package).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["Cluster", "find_bin", "missing_reason"]

PROGRAMS = ("initdb", "pg_ctl", "postgres")


def find_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all(os.access(Path(folder) / p, os.X_OK) for p in PROGRAMS):
            return Path(folder)
    return None


def _version(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


def missing_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    if find_bin() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql); the fleet and lock tests need it"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as the postgres user"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One initdb'd cluster, started on ``port``; :meth:`stop` removes it."""

    def __init__(self) -> None:
        found = find_bin()
        if found is None:
            raise RuntimeError(missing_reason())
        self.bin = found
        self.root = Path(tempfile.mkdtemp(prefix="litmus-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "litmus"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self.options = options
        self.start()

    def start(self) -> None:
        """Start the server (again, after :meth:`halt`)."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", self.options, "-w", "start")

    def halt(self) -> None:
        """Stop the server at once (``-m immediate``: connections cut, as a crash), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the ``postgres`` database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """Create database ``name`` (if new) and return its URL."""
        result = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres", "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{name}'", check_bin=False,
        )  # fmt: skip
        if result.stdout.strip() != "1":
            self._run(
                "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres", "-c",
                f'CREATE DATABASE "{name}"', check_bin=False,
            )  # fmt: skip
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # not after halt()
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "log").read_text(errors="replace")
        except OSError:
            return ""

    def _run(self, program: str, *args: str, check_bin: bool = True) -> subprocess.CompletedProcess[str]:
        exe = str(self.bin / program) if check_bin or (self.bin / program).exists() else program
        command = [exe, *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}\n{self.log()}")
        return result
