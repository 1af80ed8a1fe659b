"""Hold cell-7 (mock) and serve it: prints {"address", "file"} and serves until stdin closes.

holder.py DATA_DIR [STATION_FILE]   (another station file than stations/cell-7.yaml)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_litmus.server import serve
from serverhelpers import STATION_FILE, start_session

station = start_session(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else STATION_FILE)
server = serve(station)
print(json.dumps({"address": server.address, "file": str(server.path), "events": str(station.event_log)}), flush=True)
sys.stdin.read()
server.close()
station.stop()
