"""``sync``: a named barrier for the processes of one session (xdist workers, DUT slots).

Each party blocks until ``parties`` of them have arrived at the same name. The
barrier lives in files under ``<session_dir>/sync/<name>/``:

- ``state.json``: the generation (round) number, the parties expected, who has
  arrived in this round, and the last rounds' releases; replaced atomically, so
  it is read without a lock and changed under ``state.lock`` (a ``filelock``);
- ``<token>.party``: one file per waiting party, there for as long as it waits.
  Its arrival record names its process (pid, host, start time): a party whose
  file is gone left, one whose process is gone (even by SIGKILL, leaving the
  file) died; :func:`pytest_litmus.processes.holder_alive` tells.

A waiting party re-reads ``state.json`` with back-off (5 ms doubling to ``poll``,
a :class:`~pytest_litmus.backoff.Backoff`) and, once waiting at the slowest
rate, checks the other parties. A dead
party or a timeout *breaks* the barrier, as ``threading.Barrier`` does: everyone
waiting gets :class:`SyncError` (the one that timed out :class:`SyncTimeout`), and
so does every later arrival until :func:`reset`. The same name can be used for any
number of rounds: each full round bumps the generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_litmus.atomicfile import write_json
from pytest_litmus.backoff import Backoff
from pytest_litmus.errors import SyncError, SyncTimeout
from pytest_litmus.processes import describe, holder_alive, this_process

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
    return describe()


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
    write_json(directory / "state.json", state)


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
    """``<token>.party`` exists while this party waits: the others' proof that it has not left."""
    path = directory / f"{token}.party"
    path.touch()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _party_alive(directory: Path, arrival: dict[str, Any]) -> bool:
    """Still waiting: its party file is there (it did not leave) and its process runs (it did not die)."""
    return (directory / f"{arrival['token']}.party").exists() and holder_alive(arrival)


def _check_parties(directory: Path, generation: int, me: str) -> None:
    """Break the round if a party that arrived in it is gone."""
    with _locked(directory) as state:
        if state["generation"] != generation or state["broken"]:
            return
        for arrival in state["arrived"]:
            if arrival["token"] != me and not _party_alive(directory, arrival):
                _break(state, f"party {arrival['identity']} is gone (its process died or left) while waiting")
                return


# --------------------------------------------------------------------------- the barrier


def _arrive(directory: Path, name: str, parties: int, arrival: dict[str, Any]) -> tuple[int, int]:
    """Register ``arrival`` in the current round; release it if it is the last. Returns (generation, index)."""
    with _locked(directory) as state:
        broken = state["broken"]
        if broken:
            raise SyncError(
                name, f"broken since round {broken['generation']}: {broken['reason']}", generation=broken["generation"]
            )
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
        name,
        f"timed out after {timeout} s with {len(arrived)} of {state['parties']} parties",
        generation=generation,
        arrived=arrived,
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
        arrival = {**this_process(), "identity": who, "token": token}
        generation, index = _arrive(directory, name, parties, arrival)
        if on_arrived is not None:
            on_arrived(
                {"name": name, "generation": generation, "parties": parties, "arrived": index + 1, "identity": who}
            )
        arrived = _wait(directory, name, generation, token, who, timeout, max(poll, MIN_POLL), start)
    return SyncResult(name, generation, parties, arrived, index, time.monotonic() - start, who)


def _wait(
    directory: Path, name: str, generation: int, token: str, who: str, timeout: float | None, poll: float, start: float
) -> list[str]:
    waiting = Backoff(first=MIN_POLL, cap=poll).start(None if timeout is None else timeout - (time.monotonic() - start))
    while True:
        arrived = _outcome(_load(directory), name, generation)
        if arrived is not None:
            return arrived
        if timeout is not None and waiting.expired:
            return _timed_out(directory, name, generation, who, timeout)
        if waiting.at_cap:
            _check_parties(directory, generation, token)
        waiting.sleep()


def reset(where: str | os.PathLike[str], name: str) -> None:
    """Mend a broken barrier: forget the broken round and who was waiting in it."""
    directory = _directory(where, name)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory) as state:
        if state["broken"] or state["arrived"]:
            state["generation"] += 1
        state["broken"] = None
        state["arrived"] = []
