"""One party of a sync barrier: prints {"arrived": n} when registered, then the result or the error."""

from __future__ import annotations

import json
import sys

from pytest_litmus.sync import SyncError, sync

where, name, parties = sys.argv[1], sys.argv[2], int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else None


def arrived(fields: dict[str, object]) -> None:
    print(json.dumps({"arrived": fields["arrived"]}), flush=True)


try:
    result = sync(where, name, parties, timeout=timeout, on_arrived=arrived)
except SyncError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
    sys.exit(1)
print(json.dumps(result.fields()), flush=True)
