"""The instrument server: real client and server processes on 127.0.0.1."""

from __future__ import annotations

import os
import pickle
import signal
import stat
from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import read_json_line, spawn, start_session

from pytest_litmus.errors import InstrumentError, UnknownRole
from pytest_litmus.follow import iter_follow
from pytest_litmus.instruments import proxy_state
from pytest_litmus.sharing import (
    ENV_ADDRESS,
    InstrumentServer,
    RemoteCallError,
    ServerUnavailable,
    connect_remote,
    list_servers,
    serve,
)
from pytest_litmus.sharing.server import portable

IDN = "Keysight Technologies,34465A,MY-SIM-0001,A.03.01"


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Any]:
    station = start_session(tmp_path)
    yield station
    station.stop()


@pytest.fixture
def server(station: Any) -> Iterator[InstrumentServer]:
    with serve(station) as server:
        yield server


def test_two_client_processes_hammering_one_instrument_get_no_wrong_answer(
    station: Any, server: InstrumentServer
) -> None:
    clients = [spawn("client", "hammer", "400", env=server.environ) for _ in range(2)]
    local = station.instrument("dmm")
    wrong_here = sum(local.query("*IDN?").strip() != IDN for _ in range(200))
    results = [read_json_line(c) for c in clients]
    for c in clients:
        assert c.wait(timeout=30) == 0
    assert results == [{"wrong": 0, "calls": 400}] * 2
    assert wrong_here == 0
    calls = station.events("InstrumentCall", role="dmm")
    assert len(calls) >= 1000  # every remote call is in the holder's log


def test_remote_calls_are_recorded_with_the_caller_and_its_test(station: Any, server: InstrumentServer) -> None:
    remote = connect_remote(server.address, data_dir=station.data_dir, nodeid="tests/x.py::test_remote")
    remote.instrument("dmm").query("*IDN?")
    remote.close()
    call = station.events("InstrumentCall")[-1]
    assert call["caller"]["pid"] == os.getpid()
    assert call["nodeid"] == "tests/x.py::test_remote"


def test_a_killed_client_releases_its_lock_and_others_are_served(station: Any, server: InstrumentServer) -> None:
    holder = spawn("client", "hold", env=server.environ)
    assert read_json_line(holder) == {"locked": True}
    lock = proxy_state(station.instrument("dmm")).lock
    assert not lock.acquire(blocking=False)  # the client holds the instrument in the holder
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock.acquire(timeout=30)  # released by the server when the client's socket closed
    lock.release()
    other = spawn("client", "hammer", "20", env=server.environ)
    assert read_json_line(other) == {"wrong": 0, "calls": 20}
    assert other.wait(timeout=30) == 0


def test_a_killed_server_gives_the_client_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = spawn("holder", str(tmp_path))
    info = read_json_line(holder)
    assert stat.S_IMODE(os.stat(info["file"]).st_mode) == 0o600
    monkeypatch.setenv(ENV_ADDRESS, info["address"])
    remote = connect_remote(data_dir=tmp_path)
    dmm = remote.instrument("dmm")
    assert dmm.query("*IDN?").strip() == IDN
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with pytest.raises(ServerUnavailable, match="went away") as failed:
        dmm.query("*IDN?")
    assert isinstance(failed.value, ConnectionError)
    with pytest.raises(ServerUnavailable, match="cannot connect"):
        dmm.query("*IDN?")
    assert list_servers(tmp_path) == []  # the stale connection file is pruned
    assert not Path(info["file"]).exists()


def test_a_client_without_the_key_is_refused(station: Any, server: InstrumentServer) -> None:
    wrong = replace(server.info, key="00" * 32)
    from pytest_litmus.server import RemoteStation

    with pytest.raises(ServerUnavailable, match="refused"):
        RemoteStation(wrong)
    raw = Client((server.info.host, server.info.port))  # no authkey at all
    raw.send(("call", "dmm", "query", ("*RST",), {}, None))
    with pytest.raises((EOFError, OSError)):
        while True:
            raw.recv_bytes()
    refusals = iter_follow(station.event_log, event_type="InstrumentClientRefused", stop_at_end=False, timeout=30)
    assert len(list(islice(refusals, 2))) == 2
    assert station.events("InstrumentCall") == []


def test_connection_file_is_private_and_removed_on_close(station: Any) -> None:
    server = serve(station, ["dmm"])
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert [s.address for s in list_servers(station.data_dir)] == [server.address]
    assert server.info.host == "127.0.0.1"
    server.close()
    assert not server.path.exists()
    with pytest.raises(ServerUnavailable, match="no connection file"):
        connect_remote(server.address, data_dir=station.data_dir)


def test_errors_travel_back_with_their_type(station: Any, server: InstrumentServer) -> None:
    with connect_remote(server.address, data_dir=station.data_dir) as remote:
        dmm = remote.instrument("dmm")
        with pytest.raises(InstrumentError, match="not a number") as raised:
            dmm.query_float("*IDN?")
        assert any("instrument server" in note for note in raised.value.__notes__)
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            dmm.nonsense()
        with pytest.raises(UnknownRole):
            remote.instrument("scope")
        assert dmm.resource_name.startswith("TCPIP0::")  # a property, read remotely
        assert remote.instrument("psu").measure_voltage() == pytest.approx(5.002)


def test_served_roles_are_limited(station: Any) -> None:
    with (
        serve(station, {"psu"}) as server,
        connect_remote(server.address, data_dir=station.data_dir) as remote,
        pytest.raises(UnknownRole, match="its roles are: psu"),
    ):
        remote.instrument("dmm")


def test_unpicklable_exceptions_become_remote_call_errors() -> None:
    class Local(Exception):
        pass

    error = portable(Local("boom"), "dmm", "query")
    assert isinstance(error, RemoteCallError)
    assert "Local" in str(error) and "boom" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.role, copy.method, copy.message) == ("dmm", "query", "boom")
    gone = pickle.loads(pickle.dumps(ServerUnavailable("127.0.0.1:1", "went away")))
    assert isinstance(gone, ConnectionError) and gone.address == "127.0.0.1:1"
