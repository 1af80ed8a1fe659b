"""Write a small finished session with the product's own ``EventFile``, as whichever user runs it.

    python session.py DATA_DIR SESSION_ID

Prints ``written`` and the event file's path when done.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from pytest_litmus.events import EventFile, encode_line, events_path


def main() -> int:
    data_dir, session = Path(sys.argv[1]), sys.argv[2]
    path = events_path(data_dir, session)
    writer = EventFile(path)
    base = {"session": session, "ts": time.time()}
    writer.write(
        encode_line(
            {
                "seq": 1,
                **base,
                "type": "SessionStarted",
                "station": "cell-7",
                "mock": True,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )
    )
    writer.write(encode_line({"seq": 2, **base, "type": "TestOutcome", "nodeid": "t.py::t", "outcome": "passed"}))
    writer.write(encode_line({"seq": 3, **base, "type": "SessionEnded", "outcome": "passed", "counts": {"passed": 1}}))
    writer.close()
    print("written", path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
