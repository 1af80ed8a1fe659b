"""Every bad input on the station side is one clean error: file, key path, what was expected, what was found.

Each row of :data:`CASES` writes a project (station files, simulation files,
``litmus.yaml``, drivers), sets options and environment, and runs pytest on it
in a subprocess: it must fail with a non-zero exit, without ``INTERNALERROR``
or a traceback, and the message must hold the row's fragments. Rows that make
sense outside pytest run through ``connect()`` as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_litmus import LitmusError, ResourceInUse, connect
from pytest_litmus.errors import StationConfigError, StationNotFound

REPO = Path(__file__).resolve().parent.parent

#: The station every row starts from: cell-7's instruments, on cell-7's simulation file.
BENCH = """\
station: bench
simulation: sims/cell-7.yaml
instruments:
  dmm:
    resource: TCPIP0::192.168.1.50::inst0::INSTR
    driver: pytest_litmus.drivers:Dmm
  psu:
    resource: GPIB0::17::INSTR
    driver: pytest_litmus.drivers:PowerSupply
"""
#: The tests every row runs: both roles opened.
TESTS = "def test_dmm(dmm):\n    dmm.idn()\n\ndef test_psu(psu):\n    psu.idn()\n"
MOCK = ["--station", "bench", "--mock"]
REAL = ["--station", "bench"]


def bench(*edits: tuple[str, str]) -> str:
    """:data:`BENCH` with each ``(old, new)`` replaced (each ``old`` must be there)."""
    text = BENCH
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


def role(name: str, body: str) -> str:
    """:data:`BENCH` with one more role."""
    return BENCH + f"  {name}:\n" + "".join(f"    {line}\n" for line in body.splitlines())


@dataclass
class Case:
    name: str
    #: Files to write, relative to the project (text or bytes); a path ending in "/" is a directory.
    files: dict[str, str | bytes]
    #: What the error must say ("{root}" is the project directory).
    fragments: list[str]
    args: list[str] = field(default_factory=lambda: list(MOCK))
    env: dict[str, str] = field(default_factory=dict)
    #: ``connect()`` keyword arguments for the same input, or None where it is a pytest-only matter.
    connect: dict[str, Any] | None = field(default_factory=lambda: {"station": "bench", "mock": True})
    #: What ``connect()``'s error must say, where it differs (it names ``mock=``, not ``--mock``).
    connect_fragments: list[str] | None = None
    #: The error is one line: no frame of pytest_litmus shown (False: the user's own code raised, keep its trace).
    one_line: bool = True


SIM_OK = (REPO / "stations" / "sims" / "cell-7.yaml").read_text()

CASES = [
    # ------------------------------------------------------------ encodings, YAML
    Case(
        "station file bytes ff fe",
        {"stations/bench.yaml": b"\xff\xfe"},
        ["bench.yaml", "(file)", "UTF-8", "0xff at line 1, column 1"],
    ),
    Case(
        "station file in latin-1",
        {
            "stations/bench.yaml": bench(("station: bench\n", "station: bench\ndescription: caf\xe9\n")).encode(
                "latin-1"
            )
        },
        ["bench.yaml", "UTF-8", "0xe9 at line 2, column 17"],
    ),
    Case(
        "litmus.yaml in latin-1",
        {"litmus.yaml": "default_station: caf\xe9\n".encode("latin-1")},
        ["litmus.yaml", "UTF-8", "0xe9 at line 1"],
        args=["--mock"],
        connect={"mock": True},
    ),
    Case(
        "station file YAML syntax",
        {"stations/bench.yaml": "instruments: [\n"},
        ["bench.yaml", "(yaml)", "valid YAML", "line"],
    ),
    Case("station file a list", {"stations/bench.yaml": "- dmm\n- psu\n"}, ["bench.yaml", "(top level)", "a mapping"]),
    Case("station file empty", {"stations/bench.yaml": ""}, ["bench.yaml", "instruments: expected", "(required)"]),
    Case(
        "station file python tag",
        {"stations/bench.yaml": "instruments: !!python/object/apply:os.system ['true']\n"},
        ["bench.yaml", "(yaml)", "valid YAML"],
    ),
    Case(
        "duplicate role",
        {"stations/bench.yaml": role("dmm", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.dmm:", "each key once", "'dmm' again at line 10 (first at line 4)"],
    ),
    Case(
        "duplicate key in a role",
        {
            "stations/bench.yaml": bench(
                (
                    "    driver: pytest_litmus.drivers:Dmm\n",
                    "    driver: pytest_litmus.drivers:Dmm\n    resource: GPIB0::3::INSTR\n",
                )
            )
        },
        ["bench.yaml", "instruments.dmm.resource", "'resource' again at line 7 (first at line 5)"],
    ),
    Case(
        "duplicate top-level key",
        {"stations/bench.yaml": "simulation: sims/cell-7.yaml\n" + BENCH},
        ["bench.yaml", "simulation:", "'simulation' again at line 3 (first at line 1)"],
    ),
    Case(
        "duplicate key in litmus.yaml",
        {"litmus.yaml": "default_station: bench\ndefault_station: cell-7\n", "stations/bench.yaml": BENCH},
        ["litmus.yaml", "default_station", "again at line 2"],
        args=["--mock"],
        connect={"mock": True},
    ),
    Case(
        "duplicate resource in the simulation file",
        {"stations/sims/cell-7.yaml": SIM_OK + "  GPIB0::17::INSTR:\n    device: psu\n"},
        ["cell-7.yaml", "resources.GPIB0::17::INSTR", "again at line"],
    ),
    Case(
        "unknown key in a role",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR\ntimeout: 5")},
        ["bench.yaml", "instruments.scope.timeout", "one of the known keys"],
    ),
    Case(
        "station key is another id",
        {"stations/bench.yaml": bench(("station: bench", "station: cell-9"))},
        ["bench.yaml", "station:", "'bench' (the file name)"],
    ),
    # ------------------------------------------------------------ role names
    Case(
        "role not an identifier",
        {"stations/bench.yaml": role("my-dmm", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.my-dmm", "Python identifier"],
    ),
    Case(
        "role a keyword",
        {"stations/bench.yaml": role("class", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.class", "Python identifier"],
    ),
    Case(
        "role named station",
        {"stations/bench.yaml": role("station", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.station", "reserved"],
    ),
    Case(
        "role shadows tmp_path",
        {"stations/bench.yaml": role("tmp_path", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.tmp_path", "pytest fixture 'tmp_path'", "tmpdir.py", "rename the role"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    Case(
        "role shadows capsys",
        {"stations/bench.yaml": role("capsys", "resource: GPIB0::3::INSTR")},
        ["bench.yaml", "instruments.capsys", "'capsys'", "capture.py"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    Case(
        "role shadows monkeypatch",
        {"stations/bench.yaml": role("monkeypatch", "resource: GPIB0::3::INSTR")},
        ["instruments.monkeypatch", "monkeypatch.py"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    Case(
        "role shadows a plugin's fixture",
        {"stations/bench.yaml": role("record_property", "resource: GPIB0::3::INSTR")},
        ["instruments.record_property", "junitxml.py"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    Case(
        "role shadows a conftest fixture",
        {
            "stations/bench.yaml": role("dut_power", "resource: GPIB0::3::INSTR"),
            "conftest.py": "import pytest\n\n@pytest.fixture\ndef dut_power():\n    return 5.0\n",
        },
        ["bench.yaml", "instruments.dut_power", "conftest.py:3"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    Case(
        "role shadows a fixture of a deeper conftest",
        {
            "stations/bench.yaml": role("fixture_rig", "resource: GPIB0::3::INSTR"),
            "sub/conftest.py": "import pytest\n\n@pytest.fixture\ndef fixture_rig():\n    return 1\n",
            "sub/test_sub.py": "def test_rig(fixture_rig):\n    pass\n",
        },
        ["instruments.fixture_rig", "sub/conftest.py:3"],
        args=REAL,  # refused before any instrument opens: no simulation entry needed
        connect=None,
    ),
    # ------------------------------------------------------------ resources
    Case(
        "resource missing",
        {"stations/bench.yaml": role("scope", "driver: pytest_litmus.drivers:Dmm")},
        ["bench.yaml", "instruments.scope.resource", "(required)"],
    ),
    Case(
        "resource a number",
        {"stations/bench.yaml": role("scope", "resource: 17")},
        ["instruments.scope.resource", "a non-empty string, got 17"],
    ),
    Case(
        "resource not a VISA name",
        {"stations/bench.yaml": role("scope", "resource: the scope on the left")},
        ["bench.yaml", "instruments.scope.resource", "VISA resource name", "pyvisa cannot parse"],
    ),
    Case(
        "resource with a control character",
        {"stations/bench.yaml": role("scope", 'resource: "GPIB0::5::INSTR\\t"')},
        ["instruments.scope.resource", "control characters"],
    ),
    Case(
        "GPIB address huge",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::99999999999999999999::INSTR")},
        ["instruments.scope.resource", "GPIB primary address 99999999999999999999", "0 to 30"],
    ),
    Case(
        "TCP port huge",
        {"stations/bench.yaml": role("scope", "resource: TCPIP0::10.0.0.9::70000::SOCKET")},
        ["instruments.scope.resource", "TCP port 70000", "1 to 65535"],
    ),
    Case(
        "board number huge",
        {"stations/bench.yaml": role("scope", "resource: GPIB123456789::5::INSTR")},
        ["instruments.scope.resource", "board number 123456789"],
    ),
    Case(
        "two roles, one instrument in two spellings",
        {"stations/bench.yaml": role("psu2", "resource: GPIB::17::INSTR")},
        ["bench.yaml", "instruments.psu2.resource", "no other role uses (role 'psu' is at GPIB0::17::INSTR)"],
    ),
    # ------------------------------------------------------------ numbers, modes, options
    Case(
        "timeout_ms huge",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR\ntimeout_ms: 99999999999999999999")},
        ["instruments.scope.timeout_ms", "up to 4294967294"],
    ),
    Case(
        "timeout_ms infinite float",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR\ntimeout_ms: 1.0e+400")},
        ["instruments.scope.timeout_ms", "got inf"],
    ),
    Case(
        "timeout_ms zero",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR\ntimeout_ms: 0")},
        ["instruments.scope.timeout_ms", "got 0"],
    ),
    Case(
        "lock mode typo",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR\nlock: exclusve")},
        ["instruments.scope.lock", "exclusive, shared, none", "'exclusve'"],
    ),
    Case(
        "option key with a space",
        {"stations/bench.yaml": role("scope", 'resource: GPIB0::5::INSTR\noptions: {"baud rate": 9600}')},
        ["instruments.scope.options", "pyvisa resource attributes"],
    ),
    Case(
        "option no such attribute",
        {
            "stations/bench.yaml": bench(
                (
                    "    driver: pytest_litmus.drivers:Dmm\n",
                    "    driver: pytest_litmus.drivers:Dmm\n    options: {baud_rat: 9600}\n",
                )
            )
        },
        ["bench.yaml", "instruments.dmm.options.baud_rat", "an attribute of TCPIPInstrument"],
    ),
    Case(
        "option value refused",
        {
            "stations/bench.yaml": bench(
                (
                    "    driver: pytest_litmus.drivers:Dmm\n",
                    "    driver: pytest_litmus.drivers:Dmm\n    options: {timeout: soon}\n",
                )
            )
        },
        ["bench.yaml", "instruments.dmm.options.timeout", "a value TCPIPInstrument accepts", "'soon'"],
    ),
    # ------------------------------------------------------------ drivers
    Case(
        "driver without a colon",
        {"stations/bench.yaml": bench(("drivers:Dmm", "drivers.Dmm"))},
        ["bench.yaml", "instruments.dmm.driver", "'package.module:Class'"],
    ),
    Case(
        "driver module missing",
        {"stations/bench.yaml": bench(("pytest_litmus.drivers:Dmm", "no_such_drivers:Dmm"))},
        ["bench.yaml", "instruments.dmm.driver", "No module named 'no_such_drivers'"],
    ),
    Case(
        "driver class missing",
        {"stations/bench.yaml": bench(("drivers:Dmm", "drivers:Nope"))},
        ["bench.yaml", "instruments.dmm.driver", "AttributeError", "Nope"],
    ),
    Case(
        "driver not a class",
        {"stations/bench.yaml": bench(("drivers:Dmm", "drivers:MAX_ERROR_QUEUE"))},
        ["bench.yaml", "instruments.dmm.driver", "a class taking"],
    ),
    Case(
        "driver raises on import",
        {
            "stations/bench.yaml": bench(("pytest_litmus.drivers:Dmm", "boomdriver:Dmm")),
            "boomdriver.py": "RATIO = 1 / 0\n",
        },
        ["bench.yaml", "instruments.dmm.driver", "'boomdriver:Dmm'", "ZeroDivisionError", "boomdriver.py:1"],
    ),
    Case(
        "driver raises in __init__",
        {
            "stations/bench.yaml": bench(("pytest_litmus.drivers:Dmm", "initdriver:Broken")),
            "initdriver.py": "class Broken:\n    def __init__(self, resource):\n        raise RuntimeError('no power on the bench')\n",
        },
        ["no power on the bench", "in driver initdriver:Broken of role 'dmm' of station 'bench'", "bench.yaml"],
        connect=None,  # a driver's own exception, with a note: see test_a_driver_failing_in_init_is_named
        one_line=False,
    ),
    # ------------------------------------------------------------ simulation files
    Case(
        "simulation file missing",
        {"stations/bench.yaml": bench(("sims/cell-7.yaml", "sims/nowhere.yaml"))},
        ["bench.yaml", "simulation:", "nowhere.yaml", "no such file"],
    ),
    Case(
        "simulation file a directory",
        {"stations/bench.yaml": bench(("sims/cell-7.yaml", "sims/dir.yaml")), "stations/sims/dir.yaml/": ""},
        ["bench.yaml", "simulation:", "a directory"],
    ),
    Case(
        "simulation file malformed",
        {"stations/bench.yaml": bench(("cell-7.yaml", "bad.yaml")), "stations/sims/bad.yaml": "devices: [\n"},
        ["bad.yaml", "(yaml)", "valid YAML"],
    ),
    Case(
        "simulation file not pyvisa-sim",
        {"stations/bench.yaml": bench(("cell-7.yaml", "hello.yaml")), "stations/sims/hello.yaml": "hello: world\n"},
        ["hello.yaml", "spec:", "a pyvisa-sim simulation file", "got keys hello"],
    ),
    Case(
        "simulation file not UTF-8",
        {
            "stations/bench.yaml": bench(("cell-7.yaml", "l1.yaml")),
            "stations/sims/l1.yaml": b"spec: '1.1'\n# caf\xe9\n",
        },
        ["l1.yaml", "UTF-8", "0xe9 at line 2"],
    ),
    Case(
        "simulation file lacks a role",
        {"stations/bench.yaml": role("scope", "resource: GPIB0::5::INSTR")},
        ["cell-7.yaml", "resources:", "an entry for GPIB0::5::INSTR (role 'scope' of station 'bench')"],
    ),
    Case(
        "simulation file pyvisa-sim cannot load",
        {
            "stations/bench.yaml": bench(("cell-7.yaml", "nodev.yaml")),
            "stations/sims/nodev.yaml": (
                "spec: '1.1'\nresources:\n"
                "  TCPIP0::192.168.1.50::inst0::INSTR: {device: dmm}\n  GPIB0::17::INSTR: {device: psu}\n"
            ),
        },
        ["nodev.yaml", "(simulation file)", "pyvisa-sim can load"],
    ),
    Case(
        "mock without a simulation file",
        {"stations/bench.yaml": bench(("simulation: sims/cell-7.yaml\n", ""))},
        ["bench.yaml", "simulation:", "as mock is on (--mock)"],
        connect_fragments=["bench.yaml", "simulation:", "as mock is on (mock=)"],
    ),
    Case(
        "LITMUS_MOCK without a simulation file",
        {"stations/bench.yaml": bench(("simulation: sims/cell-7.yaml\n", ""))},
        ["bench.yaml", "simulation:", "as mock is on (LITMUS_MOCK)"],
        args=["--station", "bench"],
        env={"LITMUS_MOCK": "1"},
        connect={"station": "bench"},
    ),
    Case(
        "locked station on a malformed simulation",
        {
            "stations/bench.yaml": bench(("simulation: sims/cell-7.yaml", "visa_library: sims/bad.yaml@sim")),
            "stations/sims/bad.yaml": "resources: {\n",
        },
        ["bad.yaml", "(yaml)", "valid YAML"],
        args=["--station", "bench"],
        connect={"station": "bench"},
    ),
    # ------------------------------------------------------------ settings and their doors
    Case(
        "LITMUS_STATION unknown",
        {"stations/bench.yaml": BENCH},
        ["station 'nosuch' (from LITMUS_STATION) not found", "available stations: bench"],
        args=["--mock"],
        env={"LITMUS_STATION": "nosuch"},
        connect={"mock": True},
    ),
    Case(
        "default_station unknown",
        {"stations/bench.yaml": BENCH, "litmus.yaml": "default_station: nosuch\n"},
        ["station 'nosuch' (from default_station in {root}/litmus.yaml) not found"],
        args=["--mock"],
        connect={"mock": True},
    ),
    Case(
        "--station a path",
        {},
        ["--station: station: expected a plain station name", "'../etc'"],
        args=["--station", "../etc"],
        connect=None,
    ),
    Case(
        "LITMUS_STATION a path",
        {},
        ["environment variable LITMUS_STATION", "plain station name", "'a/b'"],
        args=["--mock"],
        env={"LITMUS_STATION": "a/b"},
        connect={"mock": True},
    ),
    Case(
        "LITMUS_MOCK not a bool",
        {},
        ["environment variable LITMUS_MOCK", "'maybe'"],
        args=REAL,
        env={"LITMUS_MOCK": "maybe"},
        connect={"station": "bench"},
    ),
    Case(
        "LITMUS_LOCK_TIMEOUT huge",
        {},
        ["environment variable LITMUS_LOCK_TIMEOUT", "at most 4294967", "'1e10'"],
        env={"LITMUS_LOCK_TIMEOUT": "1e10"},
    ),
    Case(
        "--litmus-lock-timeout nan",
        {},
        ["--litmus-lock-timeout: lock_timeout", "'nan'"],
        args=[*MOCK, "--litmus-lock-timeout", "nan"],
        connect=None,
    ),
    Case(
        "ini lock timeout",
        {"pytest.ini": "[pytest]\nlitmus_lock_timeout = soon\n"},
        ["pytest.ini [litmus_lock_timeout]", "'soon'"],
        connect=None,
    ),
    # ------------------------------------------------------------ the data dir
    Case(
        "data dir a file (option)",
        {"afile": "x"},
        ["{root}/afile: data_dir", "from --litmus-data-dir", "got a file"],
        args=[*MOCK, "--litmus-data-dir", "{root}/afile"],
        connect={"station": "bench", "mock": True, "data_dir": "{root}/afile"},
        connect_fragments=["{root}/afile: data_dir", "from data_dir=", "got a file"],
    ),
    Case(
        "data dir a file (LITMUS_HOME)",
        {"afile": "x"},
        ["{root}/afile: data_dir", "from LITMUS_HOME", "got a file"],
        env={"LITMUS_HOME": "{root}/afile"},
    ),
    Case(
        "data dir under a file (litmus.yaml)",
        {"afile": "x", "litmus.yaml": "data_dir: afile/litmus\n"},
        ["{root}/afile/litmus: data_dir", "from data_dir in {root}/litmus.yaml", "{root}/afile is not a directory"],
    ),
    Case(
        "sessions dir a file",
        {"home/sessions": "not a directory"},
        ["{root}/home: data_dir", "a directory this user can create sessions in", "Not a directory"],
    ),
]


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.fixture
def bad_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project (root marked by pytest.ini) with the example station, a bench station and tests using both roles."""
    shutil.copytree(REPO / "stations", pytester.path / "stations")
    _write(pytester.path, {"pytest.ini": "[pytest]\n", "stations/bench.yaml": BENCH, "test_roles.py": TESTS})
    monkeypatch.setenv("LITMUS_HOME", str(pytester.path / "home"))
    return pytester


def _fill(text: str, root: Path) -> str:
    return text.replace("{root}", str(root))


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_under_pytest(bad_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    root = bad_project.path
    _write(root, case.files)
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, root))
    result = bad_project.runpytest_subprocess("-p", "no:cacheprovider", *(_fill(a, root) for a in case.args))
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret != 0, output
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    assert not case.one_line or "pytest_litmus/" not in output, output
    missing = [f for f in (_fill(f, root) for f in case.fragments) if f not in output]
    assert not missing, f"{missing} not in:\n{output}"


CONNECT_CASES = [c for c in CASES if c.connect is not None]


@pytest.mark.parametrize("case", CONNECT_CASES, ids=[c.name for c in CONNECT_CASES])
def test_through_connect(bad_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    root = bad_project.path
    _write(root, case.files)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, root))
    assert case.connect is not None
    kwargs = {k: _fill(v, root) if isinstance(v, str) else v for k, v in case.connect.items()}
    with pytest.raises(LitmusError) as info, connect(**kwargs) as station:
        for name in station.config.roles:
            station.instrument(name)
    fragments = case.fragments if case.connect_fragments is None else case.connect_fragments
    missing = [f for f in (_fill(f, root) for f in fragments) if f not in str(info.value)]
    assert not missing, f"{missing} not in: {info.value}"


# ---------------------------------------------------------------------- focused: the project root


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def outer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An unrelated ancestor with a litmus.yaml (default_station: bench) and stations/, and a project inside it."""
    shutil.copytree(REPO / "stations", tmp_path / "stations")
    _write(tmp_path, {"stations/bench.yaml": BENCH, "litmus.yaml": "default_station: bench\n"})
    _write(tmp_path / "proj", {"test_plain.py": "def test_plain():\n    pass\n"})
    monkeypatch.setenv("LITMUS_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize("marker", ["pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", ".git/"])
def test_an_ancestor_litmus_yaml_does_not_switch_the_plugin_on(outer: Path, marker: str) -> None:
    project = outer / "proj"
    _write(project, {marker: "[pytest]\n" if marker in ("pytest.ini", "tox.ini") else ""})
    result = _run(project, "--mock")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "litmus:" not in result.stdout and not (outer / "home").exists()


@pytest.mark.parametrize("marker", ["pyproject.toml", ".git/"])
def test_connect_stops_at_the_project_root_too(outer: Path, monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    project = outer / "proj"
    _write(project, {marker: ""})
    monkeypatch.chdir(project / ".git" if marker == ".git/" else project)
    with pytest.raises(StationConfigError, match="station: expected a station id"):
        connect(mock=True)  # the ancestor's default_station is not this project's
    with pytest.raises(StationNotFound):
        connect("bench", mock=True)  # nor its stations/


def test_inside_a_project_the_search_still_goes_up_to_its_root(outer: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(outer, {"pyproject.toml": "", "tests/unit/test_deep.py": "def test_deep(dmm):\n    dmm.idn()\n"})
    result = _run(outer / "tests" / "unit", "--mock")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "litmus: station bench" in result.stdout
    monkeypatch.chdir(outer / "tests" / "unit")
    assert connect(mock=True).config.id == "bench"


# ---------------------------------------------------------------------- focused: canonical resource names

TERMS = '    read_termination: "\\n"\n    write_termination: "\\n"\n'
SPELLINGS_SIM = """\
spec: "1.1"
devices:
  box:
    eom:
      GPIB INSTR: {q: "\\n", r: "\\n"}
      USB INSTR: {q: "\\n", r: "\\n"}
    dialogues:
      - {q: "*IDN?", r: "ACME,BOX,1,1.0"}
resources:
  GPIB0::9::INSTR: {device: box}
  USB0::0x1234::0x5678::SN1::0::INSTR: {device: box}
  GPIB0::10::INSTR: {device: box}
"""


def test_mock_finds_every_spelling_of_a_resource_in_the_simulation(bad_project: pytest.Pytester) -> None:
    _write(
        bad_project.path,
        {
            "stations/sims/spell.yaml": SPELLINGS_SIM,
            "stations/spell.yaml": (
                "simulation: sims/spell.yaml\ninstruments:\n"
                f"  gpib:\n    resource: GPIB::9::INSTR\n{TERMS}"  # board 0 left out
                f"  usb:\n    resource: USB::0x1234::0x5678::SN1::INSTR\n{TERMS}"  # no ::0:: interface number
                f"  lower:\n    resource: gpib0::10::instr\n{TERMS}"  # VISA names are case-insensitive
            ),
            "test_roles.py": "def test_all(gpib, usb, lower):\n    assert gpib.idn() == usb.idn() == lower.idn() == 'ACME,BOX,1,1.0'\n",
        },
    )
    result = bad_project.runpytest_subprocess("-p", "no:cacheprovider", "--station", "spell", "--mock")
    result.assert_outcomes(passed=1)


def test_two_spellings_of_one_instrument_share_one_lock(
    bad_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = bad_project.path
    monkeypatch.chdir(root)
    for name, resource in (("line-a", "GPIB0::17::INSTR"), ("line-b", "GPIB::17::INSTR")):
        _write(
            root,
            {
                f"stations/{name}.yaml": f"visa_library: sims/cell-7.yaml@sim\ninstruments:\n  psu:\n    resource: {resource}\n"
            },
        )
    with connect("line-a") as a, connect("line-b") as b:
        a.instrument("psu")
        with pytest.raises(ResourceInUse) as info:
            b.instrument("psu")
        assert info.value.holder["session"] == a.session_id


# ---------------------------------------------------------------------- focused: a driver's own attribute names

IO_DRIVER = '''\
class IoDriver:
    """A user's driver that keeps the pyvisa resource as ``_io`` and has no ``close``."""

    def __init__(self, resource):
        self._io = resource

    def idn(self):
        return self._io.query("*IDN?").strip()
'''


def _io_station(root: Path) -> None:
    _write(
        root,
        {
            "iodriver.py": IO_DRIVER,
            "stations/bench.yaml": bench(
                ("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim"),  # real locks, simulated
                ("pytest_litmus.drivers:PowerSupply\n", f"iodriver:IoDriver\n{TERMS}"),
            ),
        },
    )


def test_a_driver_keeping_its_resource_elsewhere_works_on_a_locked_station(
    bad_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyvisa

    root = bad_project.path
    _io_station(root)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    with connect("bench") as station:
        psu = station.instrument("psu")
        assert psu.idn() == "Rohde&Schwarz,HMP4040,SIM-0002,2.70"
        (acquired,) = station.events("LockAcquired")
        assert (acquired["role"], acquired["kind"]) == ("psu", "visa")  # the VISA lock on the session opened here
        station.srq("psu").close()  # armed on that session too
        io = psu._io
        station.release("psu")
        with pytest.raises(pyvisa.errors.InvalidSession):  # closed, though the driver has no close()
            io.session  # noqa: B018
    bad_project.makepyfile(test_roles="def test_psu(psu):\n    assert psu.idn().startswith('Rohde')\n")
    result = bad_project.runpytest_subprocess("-p", "no:cacheprovider", "--station", "bench")
    result.assert_outcomes(passed=1)


def test_a_driver_failing_in_init_is_named(bad_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    root = bad_project.path
    _write(
        root,
        {
            "stations/bench.yaml": bench(("pytest_litmus.drivers:Dmm", "initdriver2:Broken")),
            "initdriver2.py": "class Broken:\n    def __init__(self, resource):\n        raise RuntimeError('no power')\n",
        },
    )
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    with connect("bench", mock=True) as station, pytest.raises(RuntimeError, match="no power") as info:
        station.instrument("dmm")
    (note,) = info.value.__notes__
    assert "driver initdriver2:Broken of role 'dmm' of station 'bench'" in note and str(root / "stations") in note


# ---------------------------------------------------------------------- focused: a read-only data dir


def test_a_read_only_data_dir_is_a_clean_error_as_another_user() -> None:
    """Root ignores modes, so pytest runs as ``nobody`` (as tests/test_lock_users.py runs its holders)."""
    from lockhelpers import users

    users.require()
    root = Path(tempfile.mkdtemp(prefix="litmus-ro-"))
    try:
        shutil.copytree(REPO / "stations", root / "stations")
        _write(root, {"pytest.ini": "[pytest]\n", "stations/bench.yaml": BENCH, "test_roles.py": TESTS, "ro/": ""})
        for path in (root, *root.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "ro").chmod(0o555)
        result = subprocess.run(
            [*users.as_user(users.OTHER_USER), sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *MOCK],
            cwd=root,
            env={**os.environ, "LITMUS_HOME": str(root / "ro")},
            capture_output=True,
            text=True,
            timeout=users.PATIENCE,
        )
    finally:
        shutil.rmtree(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "INTERNALERROR" not in output and "Traceback" not in output, output
    assert f"{root / 'ro'}: data_dir" in output and "from LITMUS_HOME" in output and "is not writable" in output
