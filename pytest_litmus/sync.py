"""``sync``: a named barrier for the processes of one session (xdist workers, DUT slots).

Each party blocks until ``parties`` of them have arrived at the same name. The
barrier lives in files under ``<session_dir>/sync/<name>/``:

- ``state.json``: the generation (round) number, the parties expected, who has
  arrived in this round, and the last rounds' releases; replaced atomically, so
  it is read without a lock and changed under ``state.lock`` (a ``filelock``);
- ``<token>.party``: one file per waiting party, ``flock``-ed by its process for
  as long as it waits. The kernel drops that lock when the process dies (even
  by SIGKILL), so the others see a free lock and know the party is gone.

A waiting party re-reads ``state.json`` with back-off (5 ms doubling to ``poll``)
and, once waiting at the slowest rate, checks the others' party locks. A dead
party or a timeout *breaks* the barrier, as ``threading.Barrier`` does: everyone
waiting gets :class:`SyncError` (the one that timed out :class:`SyncTimeout`), and
so does every later arrival until :func:`reset`. The same name can be used for any
number of rounds: each full round bumps the generation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_litmus.errors import LitmusError, SyncError, SyncTimeout

__all__ = ["SyncError", "SyncResult", "SyncTimeout", "reset", "sync"]

SYNC_DIR = "sync"
MIN_POLL = 0.005
DEFAULT_POLL = 0.1
#: Released rounds kept in ``state.json`` (a slow party reads its round's record there).
KEEP_ROUNDS = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")






@dataclass(frozen=True)
class SyncResult:
    """One party's passage through a round of the barrier."""

    name: str
    generation: int
    parties: int
    #: Identities of the parties in arrival order.
    arrived: list[str]
    #: This party's place in that order (0 = first).
    index: int
    #: Seconds this party waited.
    waited: float
    identity: str = ""

    def fields(self) -> dict[str, Any]:
        """Fields for a ``SyncReleased`` event."""
        return {
            "name": self.name,
            "generation": self.generation,
            "parties": self.parties,
            "arrived": self.arrived,
            "index": self.index,
            "waited": self.waited,
            "identity": self.identity,
        }


def default_identity() -> str:
    """``gw1 pid 4242@host`` (worker id when under pytest-xdist, thread name when not the main thread)."""
    parts = [os.environ.get("PYTEST_XDIST_WORKER", ""), f"pid {os.getpid()}@{socket.gethostname()}"]
    if threading.current_thread() is not threading.main_thread():
        parts.append(threading.current_thread().name)
    return " ".join(p for p in parts if p)


def _directory(where: str | os.PathLike[str], name: str) -> Path:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"sync name must be a plain name (letters, digits, '_', '.', '-'), got {name!r}")
    base = Path(where)
    if base.suffix == ".jsonl":  # an event file: its session dir
        base = base.parent
    return base / SYNC_DIR / name


# --------------------------------------------------------------------------- state


def _load(directory: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except FileNotFoundError:
        state = {}
    state.setdefault("generation", 0)
    state.setdefault("parties", None)
    state.setdefault("arrived", [])
    state.setdefault("released", {})
    state.setdefault("broken", None)
    return state


def _save(directory: Path, state: dict[str, Any]) -> None:
    tmp = directory / f"state.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, directory / "state.json")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[dict[str, Any]]:
    """The state under the barrier's file lock; saved on the way out."""
    with FileLock(str(directory / "state.lock")):
        state = _load(directory)
        yield state
        _save(directory, state)


def _break(state: dict[str, Any], reason: str) -> None:
    state["broken"] = {"generation": state["generation"], "reason": reason, "at": time.time()}


def _identities(arrivals: list[dict[str, Any]]) -> list[str]:
    return [str(a["identity"]) for a in arrivals]


# --------------------------------------------------------------------------- parties


@contextlib.contextmanager
def _party_file(directory: Path, token: str) -> Iterator[None]:
    """Hold an flock on ``<token>.party`` while waiting: the others' proof that this party lives."""
    path = directory / f"{token}.party"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _party_alive(directory: Path, token: str) -> bool:
    try:
        fd = os.open(directory / f"{token}.party", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # it left without the round being released
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _check_parties(directory: Path, generation: int, me: str) -> None:
    """Break the round if a party that arrived in it is gone."""
    with _locked(directory) as state:
        if state["generation"] != generation or state["broken"]:
            return
        for arrival in state["arrived"]:
            if arrival["token"] != me and not _party_alive(directory, arrival["token"]):
                _break(state, f"party {arrival['identity']} is gone (its process died or left) while waiting")
                return


# --------------------------------------------------------------------------- the barrier


def _arrive(directory: Path, name: str, parties: int, arrival: dict[str, Any]) -> tuple[int, int]:
    """Register ``arrival`` in the current round; release it if it is the last. Returns (generation, index)."""
    with _locked(directory) as state:
        broken = state["broken"]
        if broken:
            raise SyncError(name, f"broken since round {broken['generation']}: {broken['reason']}", generation=broken["generation"])
        if state["arrived"] and state["parties"] != parties:
            raise SyncError(name, f"this party expects {parties} parties, the others {state['parties']}")
        generation = state["generation"]
        state["parties"] = parties
        state["arrived"].append(arrival)
        index = len(state["arrived"]) - 1
        if len(state["arrived"]) >= parties:
            state["released"][str(generation)] = {"arrived": _identities(state["arrived"]), "at": time.time()}
            for old in [g for g in state["released"] if int(g) <= generation - KEEP_ROUNDS]:
                del state["released"][old]
            state["generation"] = generation + 1
            state["arrived"] = []
    return generation, index


def _outcome(state: dict[str, Any], name: str, generation: int) -> list[str] | None:
    """The round's arrivals if it was released; raises if it broke; None while it is open."""
    broken = state["broken"]
    if broken and broken["generation"] == generation:
        raise SyncError(name, broken["reason"], generation=generation, arrived=_identities(state["arrived"]))
    released = state["released"].get(str(generation))
    if released is not None:
        return list(released["arrived"])
    if state["generation"] > generation:
        raise SyncError(name, f"round {generation} was released too long ago to read its record")
    return None


def _timed_out(directory: Path, name: str, generation: int, identity: str, timeout: float) -> list[str]:
    """Break the round for a timeout (unless it was released meanwhile, then its arrivals)."""
    with _locked(directory) as state:
        with contextlib.suppress(SyncError):
            done = _outcome(state, name, generation)
            if done is not None:
                return done
        arrived = _identities(state["arrived"])
        if not state["broken"]:
            _break(state, f"party {identity} timed out after {timeout} s")
    raise SyncTimeout(
        name, f"timed out after {timeout} s with {len(arrived)} of {state['parties']} parties", generation=generation, arrived=arrived
    )


def sync(
    where: str | os.PathLike[str],
    name: str,
    parties: int,
    *,
    timeout: float | None = None,
    identity: str | None = None,
    on_arrived: Callable[[dict[str, Any]], object] | None = None,
    poll: float = DEFAULT_POLL,
) -> SyncResult:
    """Wait at barrier ``name`` of the session in ``where`` until ``parties`` parties have arrived.

    ``where`` is the session directory (or its ``events.jsonl``). ``timeout`` is
    in seconds (None: no limit). ``on_arrived`` is called with the ``SyncArrived``
    fields once this party is registered, before it waits. Returns a
    :class:`SyncResult` (its :meth:`~SyncResult.fields` make ``SyncReleased``).
    Raises :class:`SyncTimeout` on a timeout and :class:`SyncError` when another
    party died or timed out, or the barrier was already broken.
    """
    if not isinstance(parties, int) or isinstance(parties, bool) or parties < 1:
        raise ValueError(f"parties must be a positive int, got {parties!r}")
    directory = _directory(where, name)
    directory.mkdir(parents=True, exist_ok=True)
    who = identity or default_identity()
    token = uuid.uuid4().hex
    start = time.monotonic()
    with _party_file(directory, token):
        generation, index = _arrive(directory, name, parties, {"identity": who, "token": token, "pid": os.getpid()})
        if on_arrived is not None:
            on_arrived({"name": name, "generation": generation, "parties": parties, "arrived": index + 1, "identity": who})
        arrived = _wait(directory, name, generation, token, who, timeout, max(poll, MIN_POLL), start)
    return SyncResult(name, generation, parties, arrived, index, time.monotonic() - start, who)


def _wait(
    directory: Path, name: str, generation: int, token: str, who: str, timeout: float | None, poll: float, start: float
) -> list[str]:
    delay = MIN_POLL
    while True:
        arrived = _outcome(_load(directory), name, generation)
        if arrived is not None:
            return arrived
        if timeout is not None and time.monotonic() - start >= timeout:
            return _timed_out(directory, name, generation, who, timeout)
        if delay >= poll:
            _check_parties(directory, generation, token)
        pause = delay if timeout is None else max(min(delay, start + timeout - time.monotonic()), 0.0)
        time.sleep(pause)
        delay = min(delay * 2, poll)


def reset(where: str | os.PathLike[str], name: str) -> None:
    """Mend a broken barrier: forget the broken round and who was waiting in it."""
    directory = _directory(where, name)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory) as state:
        if state["broken"] or state["arrived"]:
            state["generation"] += 1
        state["broken"] = None
        state["arrived"] = []
