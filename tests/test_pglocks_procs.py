"""PostgreSQL locks across real processes: SIGKILL, a frozen holder, stress, stations, the plugin and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from children import end
from lockhelpers.procs import Child, hold, unpickle
from lockstress import run_stress

from pytest_litmus import ResourceInUse, connect
from pytest_litmus.errors import LockLost
from pytest_litmus.locks import PostgresBackend

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"
PATIENCE = 60.0
LITMUS = [sys.executable, "-m", "pytest_litmus.cli"]


def litmus(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LITMUS, *args], capture_output=True, text=True, timeout=PATIENCE, cwd=cwd, env=env)


def test_a_sigkilled_holder_frees_the_lock(tmp_path: Path, postgres_url: str) -> None:
    holder = hold(tmp_path / "pc1", DMM, "--locks", postgres_url, "--session", "doomed")
    waiter = Child(tmp_path / "pc2", DMM, "--locks", postgres_url, "--timeout", str(PATIENCE))
    try:
        assert waiter.expect("waiting")["holder"]["session"] == "doomed"
        os.kill(holder.pid, signal.SIGKILL)
        holder.proc.wait(PATIENCE)
        waiter.expect("locked")
    finally:
        waiter.close()
        holder.close()
    with PostgresBackend(postgres_url) as server:
        assert server.list() == []  # the waiter took the killed holder's row away with it


def test_a_frozen_holder_is_broken_by_force_and_learns_it_when_it_wakes(tmp_path: Path, postgres_url: str) -> None:
    holder = hold(tmp_path / "pc1", DMM, "--locks", postgres_url, "--role", "dmm")
    try:
        os.kill(holder.pid, signal.SIGSTOP)  # frozen: it can answer nothing, but its server session can end
        out = litmus("locks", "release", DMM, "--force", "--locks", postgres_url)
        assert out.returncode == 0, out.stderr
        assert "broke the lock" in out.stdout and "lock server session" in out.stdout
        with PostgresBackend(postgres_url) as server:
            server.acquire(DMM, timeout=0).release()  # free for others at once
        os.kill(holder.pid, signal.SIGCONT)
        holder.send("check")
        lost = unpickle(holder.expect("lost")["error"])
        assert isinstance(lost, LockLost) and lost.role == "dmm"
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.close()


def test_eight_processes_on_two_data_dirs_never_hold_at_once(tmp_path: Path, postgres_url: str) -> None:
    run_stress(tmp_path, DMM, workers=8, cycles=200, data_dirs=2, server=postgres_url)
    with PostgresBackend(postgres_url) as server:
        assert server.list() == []


# --------------------------------------------------------------------------- stations and the plugin


def test_litmus_yaml_locks_puts_station_locks_on_the_server(
    sim_station: str, project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "litmus.yaml").write_text(f"locks: {postgres_url}\n")
    code = (
        "import sys; from pytest_litmus import connect\n"
        f"s = connect({sim_station!r}).start(); s.instrument('dmm'); print('held', flush=True); sys.stdin.readline()"
    )
    other_home = project / "other-pc"  # another data dir: host locks would not see this holder
    env = {**os.environ, "LITMUS_HOME": str(other_home)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with connect(sim_station) as station:
            with pytest.raises(ResourceInUse) as info:
                station.instrument("dmm", timeout=0)
            assert info.value.holder["pid"] == proc.pid and info.value.holder["backend_pid"] > 0
            psu = station.instrument("psu")
            assert psu.measure_voltage() is not None
            [acquired] = station.events("LockAcquired")
            assert acquired["role"] == "psu"
        assert not (project / "home" / "locks").exists()  # nothing went to host lock files
        end(proc)
        with connect(sim_station) as station:
            station.instrument("dmm", timeout=PATIENCE)  # the killed holder's lock went with its connection
    finally:
        end(proc)


def test_a_station_session_notices_a_forced_release_before_its_next_call(
    sim_station: str, project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITMUS_LOCKS", postgres_url)
    with connect(sim_station) as station:
        dmm = station.instrument("dmm")
        dmm.measure_voltage()
        out = litmus("locks", "release", DMM.replace("TCPIP0", "TCPIP"), "--force", cwd=project)
        assert out.returncode == 0, out.stderr
        with pytest.raises(LockLost):
            dmm.measure_voltage()


def test_plugin_takes_locks_on_the_server(station_project: pytest.Pytester, postgres_url: str) -> None:
    station_project.makepyfile(
        test_bench=f"""
        from pytest_litmus.locks import PostgresBackend

        def test_dmm_is_locked_on_the_server(dmm):
            with PostgresBackend({postgres_url!r}) as server:
                [state] = server.list()
            assert state.state == "held" and state.holders[0]["role"] == "dmm"
            assert state.holders[0]["nodeid"].endswith("test_dmm_is_locked_on_the_server")
        """
    )
    text = (station_project.path / "stations" / "cell-7.yaml").read_text()
    (station_project.path / "stations" / "cell-7.yaml").write_text(
        text.replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim")
    )
    result = station_project.runpytest_subprocess("--station", "cell-7", "--litmus-locks", postgres_url)
    result.assert_outcomes(passed=1)
    with PostgresBackend(postgres_url) as server:
        assert server.list() == []  # released at the end of the session


# --------------------------------------------------------------------------- the CLI


def test_cli_lists_refuses_and_breaks(tmp_path: Path, postgres_url: str) -> None:
    url = postgres_url.replace("litmus@", "litmus:s3cret@")  # trust auth ignores it; it must never be shown
    holder = hold(tmp_path, DMM, "--locks", url, "--session", "s-cli", "--role", "dmm")
    try:
        listed = litmus("locks", "--locks", url)
        assert listed.returncode == 0 and "s-cli" in listed.stdout and "held exclusive" in listed.stdout
        doc = json.loads(litmus("locks", "--json", "--locks", url).stdout)
        assert doc["locks"][0]["holders"][0]["pid"] == holder.pid
        refused = litmus("locks", "release", DMM, "--locks", url)
        assert refused.returncode == 1 and "use --force" in refused.stderr
        missing = litmus("locks", "release", "GPIB0::1::INSTR", "--locks", url)
        assert missing.returncode == 3
        bad = litmus("locks", "release", "../x", "--locks", url)
        assert bad.returncode == 2
        broken = litmus("locks", "release", DMM, "--force", "--json", "--locks", url)
        assert json.loads(broken.stdout)["action"] == "broken"
        holder.send("check")
        holder.expect("lost")
        for out in (listed, refused, missing, broken):
            assert "s3cret" not in out.stdout + out.stderr
    finally:
        holder.close()
    assert "no locks on postgresql://litmus:***@" in litmus("locks", "--locks", url).stdout


def test_cli_takes_the_locks_setting_from_litmus_yaml_and_names_an_unreachable_server(tmp_path: Path) -> None:
    from pgserver import free_port

    (tmp_path / "litmus.yaml").write_text(f"locks: postgresql://lab:s3cret@127.0.0.1:{free_port()}/litmus\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITMUS_")}
    out = litmus("locks", cwd=tmp_path, env=env)
    assert out.returncode == 1 and "cannot use the lock server postgresql://lab:***@127.0.0.1" in out.stderr
    assert "s3cret" not in out.stderr and "Traceback" not in out.stderr
    out = litmus("locks", "release", DMM, "--force", cwd=tmp_path, env=env)
    assert out.returncode == 1 and "s3cret" not in out.stderr and "Traceback" not in out.stderr
