"""One Station interface, two whole implementations; and the platform seam."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import JoinedStation, Station, StationConnection, connect

ROOT = Path(__file__).resolve().parent.parent


def protocol_members() -> set[str]:
    own = {n for n in vars(Station) if not n.startswith("_")} | set(Station.__annotations__)
    return own | {"__enter__", "__exit__"}


@pytest.mark.parametrize("implementation", [StationConnection, JoinedStation])
def test_each_implementation_has_every_member_of_the_protocol(implementation: type) -> None:
    missing = sorted(
        n
        for n in protocol_members()
        if not hasattr(implementation, n) and n not in implementation.__init__.__code__.co_names
    )
    assert missing == []


@pytest.mark.parametrize("implementation", [StationConnection, JoinedStation])
def test_methods_take_the_protocols_parameters(implementation: type) -> None:
    for name in sorted(protocol_members()):
        expected = getattr(Station, name, None)
        actual = getattr(implementation, name, None)
        if not inspect.isfunction(expected) or not inspect.isfunction(actual):
            continue
        want = [p.name for p in inspect.signature(expected).parameters.values() if p.kind is not p.VAR_KEYWORD]
        have = [p.name for p in inspect.signature(actual).parameters.values() if p.kind is not p.VAR_KEYWORD]
        assert have[: len(want)] == want, f"{implementation.__name__}.{name}"


def test_connect_returns_the_holder_outside_any_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    station = connect("cell-7", data_dir=tmp_path, mock=True)
    assert type(station) is StationConnection


BLOCK_POSIX = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoPosix(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in ("fcntl", "termios", "pwd", "grp"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: a Windows stand-in)", name=name)
            return None

    for name in ("fcntl", "termios", "pwd", "grp"):
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, NoPosix())
    """
)


def test_mock_runs_where_posix_modules_cannot_be_imported(tmp_path: Path) -> None:
    """--mock must not need fcntl (Windows test stations): only the host-lock backend may."""
    script = BLOCK_POSIX + textwrap.dedent(
        f"""
        import pytest
        code = pytest.main(["examples", "--station", "cell-7", "--mock", "-q", "-p", "no:cacheprovider",
                            "--litmus-data-dir", {str(tmp_path)!r}])
        import sys
        assert "fcntl" not in sys.modules, "fcntl was imported"
        raise SystemExit(int(code))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout and "INTERNALERROR" not in proc.stdout + proc.stderr


def test_a_host_lock_where_there_is_no_flock_is_a_clear_error(tmp_path: Path) -> None:
    script = BLOCK_POSIX + textwrap.dedent(
        f"""
        from pytest_litmus.errors import LitmusError
        from pytest_litmus.locks import LockOwner
        try:
            LockOwner({str(tmp_path)!r}).acquire("GPIB0::17::INSTR")
        except LitmusError as exc:
            print("refused:", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "refused: host instrument locks need a POSIX system with flock" in proc.stdout


def test_a_call_site_is_its_own_line_however_many_code_objects_came_and_went(tmp_path: Path) -> None:
    """``frame_line`` keeps lines by code object and instruction: a new code object never gets an old one's line."""
    from pytest_litmus import station as station_module

    source = tmp_path / "sites.py"
    for n in range(station_module._CALL_SITES_SIZE + 50):  # past the bound: the cache starts again
        padding = "\n" * (n % 7)
        namespace: dict[str, Any] = {}
        code = f"import sys\n{padding}def site(f):\n    return (f(sys._getframe()),\n            f(sys._getframe()))\n"
        exec(compile(code, str(source), "exec"), namespace)
        first, second = namespace["site"](station_module.frame_line)
        line = 3 + n % 7
        assert (first, second) == (f"{source}:{line}", f"{source}:{line + 1}")
        del namespace  # the function, and its code object, may go
    assert len(station_module._CALL_SITES) <= station_module._CALL_SITES_SIZE


def test_measure_on_a_station_of_another_kind_records_through_its_own_measure() -> None:
    """The ``measure`` fixture's value takes any implementation of the protocol, not only litmus's two."""
    from pytest_litmus.plugin.fixtures import Measure

    calls: list[tuple[Any, ...]] = []

    class Other:
        def measure(self, name: str, value: Any, *, units: Any = None, low: Any = None, high: Any = None) -> Any:
            calls.append((name, value, units, low, high))
            return "recorded"

    class NoTest:
        measured = None

    measure: Any = Measure(Other(), NoTest())  # type: ignore[arg-type]
    assert measure("rail", 3.3, units="V", low=3.2) == "recorded"
    assert calls == [("rail", 3.3, "V", 3.2, None)]
