"""Append N events to an event file, each line in two writes (a torn line between them), then SessionEnded."""

from __future__ import annotations

import json
import os
import sys
import time

path, count = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for seq in range(1, count + 2):
    kind = "SessionEnded" if seq == count + 1 else "Observation"
    line = json.dumps({"seq": seq, "ts": time.time(), "session": "s", "type": kind, "key": "k", "value": seq}) + "\n"
    cut = seq % (len(line) - 1) + 1
    os.write(fd, line[:cut].encode())
    os.write(fd, line[cut:].encode())
os.close(fd)
