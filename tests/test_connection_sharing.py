"""The sharing methods of StationConnection: on_event, start_instrument_server, sync."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pytest_litmus import connect
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
