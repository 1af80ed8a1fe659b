"""Every shell command and Python block of README.md and docs/*.md runs, so the docs cannot drift.

Each fenced block is a case with the id ``file:line`` (of its opening fence); tests/docblocks.py
reads and sorts them and documents the ``<!-- docs-test: ... -->`` markers. A block runs in a
subprocess, with this venv's ``python``, ``pytest`` and ``litmus`` first on ``PATH``, in a fresh
copy of a scratch project made the way the quick start makes one (``litmus init cell-7``), plus
the repository's ``examples/``. Its own ``litmus.yaml`` puts the data dir inside it, and
``LITMUS_HOME`` points inside it too, so nothing is shared between cases or with the user.

The scratch project's station file also names ``visa_library: sims/cell-7.yaml@sim``: what the
docs call "the real bench" (``pytest --station cell-7``, ``connect("cell-7")``) runs there on
the simulator *with* host locks (docs/stations.md), so those commands run too. Only blocks that
need a real instrument are marked ``hardware``.

Python file blocks (first line ``# name.py``) are written into the project of every block of
their document, so one block can run another (``monitor.py``). Timeouts are hang guards only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from children import end
from docblocks import (
    DOCS,
    PYTHON,
    REPO,
    SHELL,
    Block,
    DocsError,
    all_blocks,
    compare_shapes,
    console_steps,
    is_signature,
    parse,
    python_source,
    yaml_kind,
)

HANG_GUARD = 120.0  # seconds; a block that takes this long is stuck, not slow
BIN = Path(sys.executable).parent
LANGUAGES = {*PYTHON, *SHELL, "yaml", "yml", "json", "toml", "text", "ini", "sql", ""}  # sql: tests/test_fleet_cli.py
CHECKED = ("python", "pytest", "shell", "console", "output", "signature", "script-file")
LOADED = ("station", "simulation", "project", "limits", "json", "toml")

BLOCKS = all_blocks()
CASES = [b for b in BLOCKS if b.kind in (*CHECKED, *LOADED, "skip", "hardware")]

# The session `litmus sessions`, `show` and `tail` samples of docs/cli.md describe.
SAMPLE_TEST = """\
def test_rail(dmm, measure):
    measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
    measure("rail_5v", 5.6, units="V", low=4.9, high=5.1)
"""


def environ(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITMUS_", "PYTEST_")) and k != "PYVISA_LIBRARY"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["LITMUS_HOME"] = str(project / ".litmus-home")
    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"
    env.pop("VIRTUAL_ENV", None)
    return env


def run(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=environ(cwd), capture_output=True, text=True, timeout=HANG_GUARD, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{shlex.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs-template")
    run([str(BIN / "litmus"), "init", "cell-7"], root)
    shutil.copytree(REPO / "examples", root / "examples")
    with open(root / "stations" / "cell-7.yaml", "a", encoding="utf-8") as station:
        station.write('visa_library: "sims/cell-7.yaml@sim"   # the bench, for the docs test: simulator, real locks\n')
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    block: Block = request.node.callspec.params["block"]
    root = tmp_path / "project"
    if block.marker == "empty-folder":
        root.mkdir()
        return root
    shutil.copytree(template, root)
    for other in BLOCKS:
        if other.doc == block.doc and other.file_name:
            (root / other.file_name).parent.mkdir(parents=True, exist_ok=True)
            (root / other.file_name).write_text(other.text, encoding="utf-8")
    return root


@pytest.mark.parametrize("block", CASES, ids=[b.id for b in CASES])
def test_doc_block(block: Block, project: Path) -> None:
    kind = block.kind
    if kind in ("skip", "hardware"):
        pytest.skip(f"{kind}: {block.marker_arg}")
    {
        "python": run_python,
        "pytest": run_pytest,
        "shell": run_shell,
        "console": run_console,
        "output": check_output,
        "signature": check_signature,
        "script-file": check_script_is_run,
        "station": load_station,
        "simulation": load_simulation,
        "project": load_project,
        "limits": load_limits_block,
        "json": lambda b, p: json.loads(b.text),
        "toml": lambda b, p: tomllib.loads(b.text),
    }[kind](block, project)


def slug(block: Block) -> str:
    return re.sub(r"\W", "_", block.id)


def run_python(block: Block, project: Path) -> None:
    script = project / f"docs_block_{slug(block)}.py"
    script.write_text(python_source(block), encoding="utf-8")
    run([str(BIN / "python"), script.name], project)


def run_pytest(block: Block, project: Path) -> None:
    if block.file_name == "conftest.py":
        target = "tests"  # the conftest loads for the project's own tests
    elif block.file_name:
        target = block.file_name
    else:
        target = f"test_docs_block_{slug(block)}.py"
        (project / target).write_text(python_source(block), encoding="utf-8")
    proc = run([str(BIN / "pytest"), target, "--station", "cell-7", "--mock", "-q"], project)
    assert " passed" in proc.stdout, proc.stdout


def run_shell(block: Block, project: Path) -> None:
    run(["bash", "-euo", "pipefail", "-c", strict_lines(block.text)], project)


def strict_lines(script: str) -> str:
    """Each line of ``script`` stops it when it fails: ``set -e`` alone lets ``a && b`` fail on."""
    lines = script.replace("\\\n", " ").splitlines()
    return "".join(
        f"{{ {line}\n}} || exit $?\n" for line in lines if line.strip() and not line.lstrip().startswith("#")
    )


def run_console(block: Block, project: Path) -> None:
    steps = console_steps(block.text)
    if block.marker == "background":
        assert len(steps) == 1, "a background block holds one command"
        run_background(steps[0][0], steps[0][1], project)
        return
    for command, sample in steps:
        proc = run(["bash", "-euo", "pipefail", "-c", strict_lines(command)], project)
        problem = compare_shapes(sample, proc.stdout.splitlines())
        assert problem is None, f"$ {command}: {problem}\n--- real output\n{proc.stdout}"


def run_background(command: str, sample: list[str], project: Path) -> None:
    """Start a foreground process, take its first line of stdout as ready, compare it, SIGTERM it."""
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + command], cwd=project, env=environ(project), stdout=subprocess.PIPE, text=True
    )
    guard = threading.Timer(HANG_GUARD, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, f"$ {command}: exited {proc.wait()} before printing a line"
        problem = compare_shapes(sample[:1], [first])
        assert problem is None, f"$ {command}: {problem}"
        socket_resource = re.fullmatch(r"TCPIP0?::([\w.]+)::(\d+)::SOCKET", first.strip())
        if socket_resource:  # it serves the resource it printed: ask for its identity
            with socket.create_connection((socket_resource[1], int(socket_resource[2])), timeout=HANG_GUARD) as conn:
                conn.sendall(b"*IDN?\n")
                assert conn.makefile("rb").readline().strip(), f"$ {command}: no answer to *IDN?"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0, f"$ {command}: SIGTERM did not stop it with exit 0"
    finally:
        guard.cancel()
        end(proc)


@contextmanager
def holding_dmm(project: Path) -> Iterator[None]:
    """Another process holds cell-7's dmm (on the simulated bench, with its host lock) meanwhile."""
    code = (
        "import sys\nfrom pytest_litmus import connect\n"
        "with connect('cell-7') as station:\n"
        "    station.instrument('dmm')\n    print('ready', flush=True)\n    sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [str(BIN / "python"), "-c", code], cwd=project, env=environ(project), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    guard = threading.Timer(HANG_GUARD, holder.kill)
    guard.start()
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "ready\n"
        yield
        holder.stdin.close()
        assert holder.wait() == 0
    finally:
        guard.cancel()
        end(holder)


def check_output(block: Block, project: Path) -> None:
    """A sample of ``COMMAND``'s output (marker ``output COMMAND``): the real output has its shape.

    For ``litmus`` commands the project first records the session docs/cli.md describes (one test,
    one passing and one failing measurement); ``SESSION`` stands for its id. ``litmus locks``
    runs while another process holds the dmm.
    """
    command = block.marker_arg
    if command.startswith("litmus "):
        (project / "tests" / "test_board.py").write_text(SAMPLE_TEST, encoding="utf-8")
        run([str(BIN / "pytest"), "tests/test_board.py", "--station", "cell-7", "--mock"], project, check=False)
        (session,) = [p.name for p in (project / ".litmus" / "sessions").iterdir()]
        command = command.replace("SESSION", session)
    with holding_dmm(project) if command.startswith("litmus locks") else _nothing():
        proc = run(["bash", "-c", command], project)
    sample = [line for line in block.text.splitlines() if not line.startswith("$ ")]  # its command line
    problem = compare_shapes(sample, proc.stdout.splitlines())
    assert problem is None, f"{block.marker_arg}: {problem}\n--- real output\n{proc.stdout}"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def check_signature(block: Block, project: Path) -> None:
    """``name(params) -> result``: the same parameters (names, kinds, defaults) as the real callable."""
    (stub,) = ast.parse("def " + " ".join(block.text.split()) + ": ...").body
    assert isinstance(stub, ast.FunctionDef)
    target = block.marker_arg or f"pytest_litmus:{stub.name}"
    module, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    real = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    documented = inspect.signature(_stub_function(stub)).parameters.values()
    assert [(p.name, p.kind, p.default) for p in documented] == [(p.name, p.kind, p.default) for p in real]


def _stub_function(stub: ast.FunctionDef) -> Any:
    """The stub as a function, annotations dropped (they only name types), defaults evaluated."""
    for arg in (*stub.args.posonlyargs, *stub.args.args, *stub.args.kwonlyargs):
        arg.annotation = None
    stub.returns = None
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module([stub], []), "<signature>", "exec"), namespace)  # our own docs, not input
    return namespace[stub.name]


def check_script_is_run(block: Block, project: Path) -> None:
    """A script file (``# monitor.py``) is run by another block of its document, which is checked."""
    runners = [
        other
        for other in BLOCKS
        if other.doc == block.doc and other is not block and other.kind in ("python", "shell", "console")
    ]
    assert any(block.file_name in other.text for other in runners), (
        f"nothing in {block.doc} runs {block.file_name}: run it from a block, or mark it skip"
    )


def load_station(block: Block, project: Path) -> None:
    from pytest_litmus.config import load_station_file

    name = (yaml.safe_load(block.text) or {}).get("station", "docs-block")
    path = project / "stations" / f"{name}.yaml"  # beside the scratch project's sims/
    path.write_text(block.text, encoding="utf-8")
    load_station_file(path)


def load_simulation(block: Block, project: Path) -> None:
    from pytest_litmus.sim import load_extensions, resource_manager

    path = project / "docs-sim.yaml"
    path.write_text(block.text, encoding="utf-8")
    load_extensions(path)
    rm = resource_manager(path, fresh=True)
    try:
        for name in rm.list_resources():
            rm.open_resource(name).close()
    finally:
        rm.close()


def load_project(block: Block, project: Path) -> None:
    from pytest_litmus.config import load_project_config

    path = project / "litmus.yaml"
    path.write_text(block.text, encoding="utf-8")
    load_project_config(path)


def load_limits_block(block: Block, project: Path) -> None:
    from pytest_litmus.limits import load_limits

    path = project / "limits.yaml"
    path.write_text(block.text, encoding="utf-8")
    load_limits(path)


def test_every_block_has_a_known_language() -> None:
    unknown = [f"{b.id} ({b.lang})" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unknown, "add the language to LANGUAGES, saying whether it runs: " + ", ".join(unknown)


def test_markers_steer_only_what_they_can() -> None:
    wrong = [
        b.id
        for b in BLOCKS
        if (b.marker == "background" and b.kind != "console")
        or (b.marker == "continue" and b.lang not in PYTHON)
        or (b.marker in ("skip", "hardware", "output") and not b.marker_arg)
    ]
    assert not wrong, "markers that do nothing there (or skip without a reason): " + ", ".join(wrong)


def test_the_readme_install_commands_are_what_ci_runs() -> None:
    """README's two first commands reinstall the venv, so they are not run here: .ci/run runs them."""
    (first,) = [b for b in BLOCKS if b.doc == "README.md" and b.lang in SHELL][:1]
    assert first.marker == "skip"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line for line in first.text.splitlines() if line.strip() and not line.startswith("#")]
    commands = [command.strip() for line in lines for command in line.split("&&")]
    assert commands and len(commands) % 3 == 0, first.text
    for command in commands:
        if command.startswith(".venv/bin/pytest"):
            args = command.removeprefix(".venv/bin/pytest").strip()
            assert re.search(rf"^\s*(run_pytest|\.venv/bin/pytest)\s*{re.escape(args)}\s*$", ci, re.M), command
        elif ".venv/bin/pip install" in command:
            assert "-m pip install --quiet -e '.[test]'" in ci and command.endswith("-e '.[test]'"), command
        else:
            assert command.split()[:3] == ["python3", "-m", "venv"] and "-m venv .venv" in ci, command


def test_docs_are_found() -> None:
    assert len(DOCS) > 5 and len(CASES) > 30


# --------------------------------------------------------------------------- the reader itself


def _parse(tmp_path: Path, text: str) -> list[Block]:
    (tmp_path / "x.md").write_text(text, encoding="utf-8")
    return parse(tmp_path / "x.md", "x.md")


def test_reader_takes_fences_markers_and_continuations(tmp_path: Path) -> None:
    blocks = _parse(
        tmp_path,
        "<!-- docs-test: hardware needs a DMM -->\n\n```py\nx = 1\n```\n"
        "  ~~~~ console extra\n  $ litmus sessions\n  SESSION  STATION\n  ~~~~\n"
        "<!-- docs-test: continue -->\n```python\nprint(x)\n```\n",
    )
    assert [(b.id, b.lang, b.kind, b.marker_arg) for b in blocks] == [
        ("x.md:3", "py", "hardware", "needs a DMM"),
        ("x.md:6", "console", "console", ""),
        ("x.md:11", "python", "python", ""),
    ]
    assert console_steps(blocks[1].text) == [("litmus sessions", ["SESSION  STATION"])]
    assert python_source(blocks[2]) == "x = 1\nprint(x)\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("```python\nx = 1\n", "fence never closed"),
        ("<!-- docs-test: skipp typo -->\n```sh\ntrue\n```\n", "unknown docs-test marker 'skipp'"),
        ("<!-- docs-test: skip why -->\nprose\n```sh\ntrue\n```\n", "directly before a fence"),
        ("<!-- docs-test: continue -->\n```python\nx\n```\n", "no Python block before it"),
    ],
)
def test_reader_refuses_markers_that_steer_nothing(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(DocsError, match=re.escape(error)):
        for block in _parse(tmp_path, text):
            python_source(block)


def test_shapes_catch_a_changed_header_and_a_missing_line() -> None:
    real = ["SESSION  STATION  OUTCOME", "ab12cd34  cell-7  passed"]
    assert compare_shapes(["SESSION  STATION  OUTCOME"], real) is None
    assert "table header" in str(compare_shapes(["SESSION  STATION  RESULT"], real))
    real = ["Session 3f0c", "  station   cell-7", "Tests (1)", "  PASSED  t.py::t  2.1ms"]
    assert compare_shapes(["Session ab12", "Tests (9)", "  PASSED  u.py::u  250ms"], real) is None
    assert compare_shapes(["Tests (1)", "Session ab12"], real) is not None  # out of order
    assert compare_shapes(["  FAILED  t.py::t  1ms"], real) is not None


def test_yaml_is_loaded_only_when_recognisably_a_litmus_file() -> None:
    assert yaml_kind("station: x\ninstruments: {}\n") == "station"
    assert yaml_kind('spec: "1.1"\ndevices: {}\n') == "simulation"
    assert yaml_kind("default_station: cell-7\ndata_dir: .litmus\n") == "project"
    assert yaml_kind("limits: limits/board.yaml\n") == "project"
    assert yaml_kind("unlisted: open\nmeasurements: {v: {low: 1}}\n") == "limits"
    assert yaml_kind("measurements: {}\nnotes: x\n") == "data"
    assert yaml_kind("jobs: {}\n") == yaml_kind("- a\n") == yaml_kind("{}\n") == "data"
    assert yaml_kind("instruments: [unclosed\n") == "station"  # a broken station file is still checked (and fails)


def test_signatures_are_told_from_code() -> None:
    assert is_signature("connect(station: str | None = None, *,\n  mock: bool | None = None) -> Station")
    assert not is_signature("connect('cell-7')")
    assert not is_signature("def f(:\n")
