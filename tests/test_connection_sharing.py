"""The sharing methods of StationConnection: on_event, start_instrument_server, sync."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import read_json_line, spawn

from pytest_litmus import JoinedStation, LitmusError, StationConnection, connect
from pytest_litmus.errors import UnknownRole
from pytest_litmus.server import connect_remote


def test_on_event_replays_then_pushes_live_events(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        station.observe("before", 1)
        seen: list[dict[str, Any]] = []
        got_live = threading.Event()

        def callback(event: dict[str, Any]) -> None:
            seen.append(event)
            if event.get("key") == "after":
                got_live.set()

        unsubscribe = station.on_event(callback, event_type="Observation")
        assert [e["key"] for e in seen] == ["before"]  # replayed before on_event returned
        station.observe("after", 2)
        assert got_live.wait(timeout=10)
        unsubscribe()
    assert [e["key"] for e in seen] == ["before", "after"]


def test_instrument_server_serves_the_holders_instruments(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        address = station.start_instrument_server()
        assert station.instrument_server_address == address and address.startswith("127.0.0.1:")
        remote = connect_remote(address, data_dir=station.data_dir)
        assert remote.instrument("dmm").measure_voltage() == 3.3012
        remote.close()
    calls = station.events("InstrumentCall", role="dmm")
    assert calls[-1]["method"] == "measure_voltage" and calls[-1]["caller"]["pid"]


def test_sync_with_one_party_records_arrival_and_release(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        result = station.sync("power-up", timeout=5, parties=1)
        assert result.parties == 1
    assert [e["type"] for e in station.events(["SyncArrived", "SyncReleased"])] == ["SyncArrived", "SyncReleased"]


def test_connect_with_a_server_joins_the_holders_session(project: Path) -> None:
    with connect("cell-7", mock=True) as station:
        station.start_instrument_server()
        proc = spawn("joiner", env=station.instrument_server.environ)
        out = read_json_line(proc)
        assert proc.wait(timeout=30) == 0
    assert out["session"] == station.session_id and out["volts"] == 3.3012 and out["status"] & 0x40
    events = station.events()
    assert [e["type"] for e in events].count("SessionStarted") == 1  # the joiner starts no session of its own
    assert [e["type"] for e in events].count("SessionEnded") == 1
    joined = [e for e in events if e.get("caller", {}).get("pid") == out["pid"] and e.get("nodeid") == "slot-1"]
    assert {"InstrumentCall", "Measurement", "SrqWait"} <= {e["type"] for e in joined}
    assert events[-1]["counts"] == {"measurements_passed": 1}  # the holder counts the joiner's measurements


def test_joining_checks_the_station_and_what_a_joined_connection_cannot_do(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect("cell-7", mock=True) as station:
        address = station.start_instrument_server()
        with pytest.raises(LitmusError, match="serves station 'cell-7', not 'cell-8'"):
            connect("cell-8", server=address)
        monkeypatch.setenv("LITMUS_SERVER", address)  # inherited from a holder of another station: not joined
        (project / "stations" / "cell-8.yaml").write_text(
            (project / "stations" / "cell-7.yaml").read_text().replace("station: cell-7", "station: cell-8")
        )
        assert (
            isinstance(connect("cell-8", mock=True), StationConnection)
            and connect("cell-8").session_id != station.session_id
        )
        assert connect().session_id == station.session_id  # no station named: the inherited server is joined
        with connect(server=address) as joined:
            assert isinstance(joined, JoinedStation) and joined.session_id == station.session_id
            assert joined.config.id == "cell-7" and joined.mock
            with pytest.raises(UnknownRole):
                joined.instrument("scope")
            with pytest.raises(LitmusError, match="only the holder serves"):
                joined.start_instrument_server()
            joined.nodeid = "t::1"
            assert joined.instrument("psu").measure_current() >= 0
        assert joined.outcome == "passed"
        assert station.started  # a client leaving ends nothing
    call = station.events("InstrumentCall", role="psu")[-1]
    assert call["nodeid"] == "t::1" and call["caller"]["pid"] == os.getpid()


def test_a_mock_connection_cannot_join_a_real_holder(project: Path) -> None:
    path = project / "stations" / "cell-7.yaml"
    path.write_text(path.read_text().replace("simulation: sims/cell-7.yaml", "visa_library: sims/cell-7.yaml@sim"))
    with connect("cell-7") as station:
        address = station.start_instrument_server()
        with pytest.raises(LitmusError, match="holds the real instruments of 'cell-7'; mock=True cannot join it"):
            connect(server=address, mock=True)
