"""The station page without a browser: the run controller (real subprocesses), prompts, the HTTP doors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pagehelpers import make_project, page_server

from pytest_litmus import connect
from pytest_litmus.backoff import Backoff
from pytest_litmus.errors import PromptTimeout, RunInProgress, SerialRefused
from pytest_litmus.follow import Follower
from pytest_litmus.page.runner import RunController, check_serial, command_argv
from pytest_litmus.prompts import ask, page_attached, presence_file, read_terminal, write_answer

httpx = pytest.importorskip("httpx")
PATTERN = re.compile(r"PB-[0-9]{4}")
WAITING = """
import threading

def test_waits(measure):
    measure("before_stop", 1.0, low=0, high=2)
    threading.Event().wait()  # until the page's Stop interrupts the run
"""


def wait_for(condition: Any, timeout: float = 120.0) -> None:
    poll = Backoff(first=0.005, cap=0.1).start(timeout)
    while not condition():
        assert not poll.expired, "the condition never held"
        poll.sleep()


# --------------------------------------------------------------------------- serials and argv


@pytest.mark.parametrize(
    "serial",
    [
        "",
        "   ",
        "PB-1 2",
        "-k",
        "--collect-only",
        "PB\x00",
        "PB\n1",
        "x" * 129,
        42,
        None,
        ["PB-0001"],
        "PB-12;rm -rf /",
        "PB-1,PB-2",  # --dut would take it for two units
    ],
)
def test_a_bad_serial_is_refused_before_anything_runs(serial: object) -> None:
    with pytest.raises(SerialRefused):
        check_serial(serial, None)


def test_a_serial_must_match_the_station_pattern() -> None:
    assert check_serial(" PB-0042 ", PATTERN) == "PB-0042"
    with pytest.raises(SerialRefused, match="dut_pattern"):
        check_serial("PB-42", PATTERN, "litmus.yaml")


def test_a_serial_is_one_argument_and_never_reaches_a_shell(tmp_path: Path) -> None:
    serial = "$(touch${IFS}pwned);`id`|{station}'\"*"
    argv = command_argv("pytest --station {station} --dut {serial} -k 'a and b'", serial=serial, station="cell-7")
    assert argv == ["pytest", "--station", "cell-7", "--dut", serial, "-k", "a and b"]
    (tmp_path / "argv.py").write_text("import sys, json; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n")
    runs = RunController("cell-7", f"{sys.executable} argv.py {{serial}}", data_dir=tmp_path / "data", cwd=tmp_path)
    runs.start(check_serial(serial, None))
    wait_for(lambda: not runs.running)
    assert json.loads((tmp_path / "argv.json").read_text()) == [serial]
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- start and stop


def test_stop_ends_the_session_terminated_and_one_run_at_a_time(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"test_wait.py": WAITING})
    env = {**os.environ, "LITMUS_HOME": str(project / "data")}
    runs = RunController(
        "cell-7",
        "pytest -q -p no:cacheprovider --station {station} --dut {serial} --mock",
        data_dir=project / "data",
        cwd=project,
        env=env,
    )
    run = runs.start("PB-0001")
    with pytest.raises(RunInProgress, match="PB-0001"):
        runs.start("PB-0002")
    other = RunController("cell-7", "true", data_dir=project / "data", cwd=project)
    with pytest.raises(RunInProgress):  # another page process on the same station
        other.start("PB-0003")
    sessions = project / "data" / "sessions"
    wait_for(lambda: not runs.running or (sessions.is_dir() and any(sessions.glob("*/events.jsonl"))))
    assert runs.running, list(run.output)
    (log,) = sessions.glob("*/events.jsonl")
    for _ in Follower(log, event_type="Measurement", timeout=120):
        break  # the test is running: now stop it
    runs.stop()
    wait_for(lambda: not runs.running)
    assert run.returncode == 2  # pytest: interrupted
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["type"], last["outcome"]) == ("SessionEnded", "terminated")
    runs.start("PB-0004")  # the station is free again
    runs.close()


def test_stop_escalates_when_the_run_ignores_sigint(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
    )
    (tmp_path / "stubborn.py").write_text(code)
    runs = RunController("cell-7", f"{sys.executable} stubborn.py", data_dir=tmp_path / "data", cwd=tmp_path, grace=0.2)
    run = runs.start("PB-0001")
    wait_for(lambda: "ready" in run.output)
    runs.stop()
    wait_for(lambda: not runs.running)
    assert run.returncode == -signal.SIGTERM


# --------------------------------------------------------------------------- prompts


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": str(event_type), **fields}
        self.events.append(event)
        return event


def answer_when_asked(data_dir: Path, emit: Recorder, answers: list[str]) -> threading.Thread:
    def run() -> None:
        wait_for(lambda: any(e["type"] == "PromptAsked" for e in emit.events))
        prompt = emit.events[0]["prompt"]
        for text in answers:
            write_answer(data_dir, prompt, text)
            path = data_dir / "page" / "answers" / f"{prompt}.json"
            wait_for(lambda path=path: not path.exists() or any(e["type"] != "PromptAsked" for e in emit.events))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def announce(data_dir: Path) -> None:
    from pytest_litmus.prompts import announce_page

    announce_page(data_dir, "cell-7", "http://127.0.0.1:1/")


def test_a_prompt_goes_to_the_page_and_an_answer_outside_the_choices_is_dropped(tmp_path: Path) -> None:
    announce(tmp_path)
    assert page_attached(tmp_path, "cell-7") and not page_attached(tmp_path, "cell-8")
    emit = Recorder()
    thread = answer_when_asked(tmp_path, emit, ["maybe", "yes"])
    answer = ask(emit, data_dir=tmp_path, station="cell-7", text="LED green?", choices=["yes", "no"], timeout=120)
    thread.join()
    assert answer == "yes"
    assert [e["type"] for e in emit.events] == ["PromptAsked", "PromptAnswered"]
    assert emit.events[1]["via"] == "page" and emit.events[1]["answer"] == "yes"


def test_an_unanswered_prompt_times_out(tmp_path: Path) -> None:
    announce(tmp_path)
    emit = Recorder()
    with pytest.raises(PromptTimeout, match=r"within 0\.05 s") as caught:
        ask(emit, data_dir=tmp_path, station="cell-7", text="Connect TP3", timeout=0.05)
    assert isinstance(caught.value, TimeoutError)
    assert [(e["type"], e.get("reason")) for e in emit.events] == [("PromptAsked", None), ("PromptExpired", "timeout")]


def test_a_dead_page_is_not_attached(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = presence_file(tmp_path, "cell-7")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "station": "cell-7"}))
    assert not page_attached(tmp_path, "cell-7")
    path.write_text("{not json")
    assert not page_attached(tmp_path, "cell-7")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": ""}, ValueError),
        ({"text": 3}, ValueError),
        ({"text": "q", "choices": "yes"}, TypeError),
        ({"text": "q", "choices": []}, ValueError),
        ({"text": "q", "choices": ["a", "a"]}, ValueError),
        ({"text": "q", "choices": ["a", 1]}, ValueError),
        ({"text": "q", "timeout": 0}, ValueError),
        ({"text": "q", "timeout": float("nan")}, TypeError),
        ({"text": "q", "timeout": True}, TypeError),
        ({"text": "q", "timeout": "5"}, TypeError),
    ],
)
def test_bad_prompt_arguments_are_refused_before_asking(tmp_path: Path, kwargs: dict[str, Any], error: type) -> None:
    emit = Recorder()
    with pytest.raises(error):
        ask(emit, data_dir=tmp_path, station="cell-7", **kwargs)
    assert emit.events == []


@pytest.mark.parametrize("prompt", ["../../etc/passwd", "A" * 32, "0" * 31, 7])
def test_an_answer_to_no_prompt_id_is_refused(tmp_path: Path, prompt: Any) -> None:
    with pytest.raises(ValueError):
        write_answer(tmp_path, prompt, "yes")


def test_without_page_or_terminal_the_prompt_fixture_fails_clearly(station_project: pytest.Pytester) -> None:
    station_project.makepyfile("def test_ask(prompt):\n    prompt('Is the LED green?', choices=['yes', 'no'])\n")
    result = station_project.runpytest_subprocess("--station", "cell-7", "--mock")  # stdin closed
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PromptUnavailable: cannot ask the operator 'Is the LED green?'*litmus page*"])
    (log,) = (station_project.path / "home" / "sessions").glob("*/events.jsonl")
    expired = [json.loads(line) for line in log.read_text().splitlines() if '"PromptExpired"' in line]
    assert [e["reason"] for e in expired] == ["unavailable"]


def test_the_prompt_fixture_asks_on_a_terminal(station_project: pytest.Pytester) -> None:
    import pty

    station_project.makepyfile(
        "def test_ask(prompt, measure):\n"
        "    measure('led', 1 if prompt('LED green?', choices=['yes', 'no']) == 'yes' else 0, low=1, high=1)\n"
    )
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--station", "cell-7", "--mock"],
        cwd=station_project.path,
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "LITMUS_HOME": str(station_project.path / "home")},
    )
    os.close(child)
    seen = b""

    def read_until(text: bytes, count: int = 1) -> None:
        nonlocal seen
        while seen.count(text) < count:
            try:
                seen += os.read(main, 4096)
            except OSError:  # pytest exited: the pty is closed
                raise AssertionError(seen.decode(errors="replace")) from None

    read_until(b"LED green? [yes/no]")
    os.write(main, b"perhaps\n")
    read_until(b"LED green? [yes/no]", 2)
    os.write(main, b"YES\n")
    try:
        while True:
            seen += os.read(main, 4096)
    except OSError:  # the pty closes when pytest exits
        pass
    assert process.wait(timeout=120) == 0, seen.decode(errors="replace")
    (log,) = (station_project.path / "home" / "sessions").glob("*/events.jsonl")
    answered = [json.loads(line) for line in log.read_text().splitlines() if '"PromptAnswered"' in line]
    assert [(e["answer"], e["via"]) for e in answered] == [("yes", "terminal")]


def test_read_terminal_refuses_what_is_no_terminal(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w+") as not_a_tty, pytest.raises(EOFError):
        read_terminal("q", None, 1.0, stdin=not_a_tty)


# --------------------------------------------------------------------------- the server over HTTP


def test_the_page_follows_a_session_started_elsewhere_and_refuses_hostile_requests(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {})
    with page_server(project) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/static/page.js").status_code == 200
        assert client.get("/static/../hub.py").status_code == 404
        post = {"headers": {"content-type": "application/json"}}
        assert client.post("/api/start", content=b'{"serial": "' + b"x" * 5000 + b'"}', **post).status_code == 413
        assert client.post("/api/start", content=b"[1, 2]", **post).status_code == 400
        assert client.post("/api/start", content=b"{nope", **post).status_code == 400
        assert client.post("/api/start", data={"serial": "PB-0001"}).status_code == 415  # a form from anywhere
        evil = {"content-type": "application/json", "origin": "http://evil.example"}
        assert client.post("/api/start", json={"serial": "PB-0001"}, headers=evil).status_code == 403
        refused = client.post("/api/start", json={"serial": "PB-1;rm"})
        assert refused.status_code == 400 and "dut_pattern" in refused.json()["error"]
        assert client.post("/api/stop", json={}).status_code == 409
        assert client.post("/api/answer", json={"prompt": "../../x", "answer": "yes"}).status_code == 400
        assert client.post("/api/nothing", json={}).status_code == 404
        assert not (project / "data" / "sessions").exists()

        with client.stream("GET", "/api/stream") as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: state"
            wait_for(lambda: page_attached(project / "data", "cell-7"))
            with connect("cell-7", data_dir=project / "data", mock=True) as station:  # a run from a terminal
                station.measure("vout", 3.3, units="V", low=3.2, high=3.4)
                for line in lines:
                    if line.startswith("data: [") and '"vout"' in line:
                        break
        wait_for(lambda: not page_attached(project / "data", "cell-7"))


def test_a_non_loopback_address_is_served_with_a_warning(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {})
    with page_server(project, "--host", "0.0.0.0") as (url, process):
        assert url.startswith("http://0.0.0.0:")
        assert process.stderr is not None
        assert "warning: listening on 0.0.0.0" in process.stderr.readline()


def test_the_core_install_imports_no_web_stack_and_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import pytest_litmus.plugin, pytest_litmus.cli\n"
        "pytest_litmus.cli.build_parser()\n"
        "assert not {'starlette', 'uvicorn'} & set(sys.modules), sorted(sys.modules)\n"
        "sys.modules['starlette'] = None\n"
        "from pytest_litmus.errors import PageUnavailable\n"
        "from pytest_litmus.page import require\n"
        "try:\n    require()\nexcept PageUnavailable as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'pytest-litmus[page]'" in out
