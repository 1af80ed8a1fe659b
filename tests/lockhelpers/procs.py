"""Start and talk to lock-holder subprocesses (``holder.py``) from the tests."""

from __future__ import annotations

import base64
import json
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from children import end

HERE = Path(__file__).parent
#: Hang guard only: a child that says nothing for this long has failed the test.
PATIENCE = 60.0


class Child:
    """A ``holder.py`` process; ``expect(event)`` waits for its next JSON line.

    ``as_user``: a command prefix that runs it as another user
    (``setpriv --reuid=nobody ...``, see ``users.py``); it must ``exec``, so
    ``pid`` is the holder's own.
    """

    def __init__(self, data_dir: Path, resource: str, *args: str, as_user: Sequence[str] = (), umask: int = -1) -> None:
        self.proc = subprocess.Popen(
            [*as_user, sys.executable, str(HERE / "holder.py"), str(data_dir), resource, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            umask=umask,
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def expect(self, event: str) -> dict[str, Any]:
        line = self._lines.get(timeout=PATIENCE)
        assert line, f"child {self.pid} exited (rc={self.proc.wait()}) before saying {event!r}"
        message: dict[str, Any] = json.loads(line)
        assert message["event"] == event, message
        return message

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._pump_thread.join(PATIENCE)  # it reads stdout to the end, which comes with the process's
        end(self.proc)


def unpickle(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


def hold(data_dir: Path, resource: str, *args: str, as_user: Sequence[str] = (), umask: int = -1) -> Child:
    """A child that has locked ``resource``."""
    child = Child(data_dir, resource, *args, as_user=as_user, umask=umask)
    child.expect("locked")
    return child
