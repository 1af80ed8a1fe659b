"""Several OS users on one station: locks, records, sessions in a data dir shared through a group.

The holders, acquirers and CLI runs below are real processes of two real
unprivileged users (``lockhelpers/users.py``: ``daemon`` and ``nobody``, both in
the group ``users``), in a data dir set up as docs/locking.md says: owned by the
group, ``chmod 2775``. The test process is root, the third user. These tests are
skipped where that cannot be arranged, and fail instead under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lockhelpers import procs, users

from pytest_litmus.cli import main
from pytest_litmus.cli.locks import EXIT_OK, EXIT_REFUSED
from pytest_litmus.errors import AccessDenied, LitmusError, LockLost, ResourceInUse
from pytest_litmus.locks import LockOwner, list_locks, lock_key, release_lock

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"
HELPERS = Path(__file__).parent / "lockhelpers"


@pytest.fixture
def station_dir() -> Iterator[Path]:
    """A data dir as docs/locking.md sets one up: group ``users``, mode 2775; removed afterwards."""
    users.require()
    path = Path(tempfile.mkdtemp(prefix="litmus-users-"))
    try:
        os.chown(path, 0, users.shared_gid())
        os.chmod(path, 0o2775)
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def spawn(station_dir: Path) -> Iterator[Callable[..., Any]]:
    """``spawn(user, resource, *args, locked=True)``: a ``holder.py`` child running as ``user``."""
    started: list[Any] = []

    def start(
        user: str, resource: str, *args: str, locked: bool = True, in_group: bool = True, umask: int = 0o022
    ) -> Any:
        child = procs.Child(station_dir, resource, *args, as_user=users.as_user(user, in_group=in_group), umask=umask)
        started.append(child)
        if locked:
            child.expect("locked")
        return child

    yield start
    for child in started:
        child.close()


@pytest.fixture
def holder_user() -> str:
    return users.holder_user()


def _kill(child: Any) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.proc.wait()


def _as_root(data_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- locks


def test_other_users_acquirer_gets_resource_in_use_naming_the_holder(
    spawn: Callable[..., Any], holder_user: str
) -> None:
    holder = spawn(holder_user, DMM, "--role", "dmm")
    other = spawn(users.OTHER_USER, DMM, locked=False)
    said = other.expect("in_use")
    err = procs.unpickle(said["error"])
    assert isinstance(err, ResourceInUse) and not isinstance(err, PermissionError)
    assert err.holder["pid"] == holder.pid and err.holder["user"] == holder_user
    assert f"{holder_user}@" in str(err)


def test_files_are_shared_with_the_group_whatever_the_umask(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str
) -> None:
    spawn(holder_user, DMM, umask=0o077)
    folder = station_dir / "locks"
    lock = folder / f"{lock_key(DMM)}.lock"
    [record] = folder.glob(f"{lock_key(DMM)}.*.json")
    assert users.owner(folder) == holder_user and users.mode(folder) == 0o2770  # setgid, group rwx; others: umask
    assert folder.stat().st_gid == users.shared_gid()
    for path in (lock, record):
        assert users.owner(path) == holder_user and path.stat().st_gid == users.shared_gid()
        assert users.mode(path) == 0o660


def test_umask_022_gives_the_documented_modes(spawn: Callable[..., Any], station_dir: Path, holder_user: str) -> None:
    spawn(holder_user, DMM, umask=0o022)
    folder = station_dir / "locks"
    assert users.mode(folder) == 0o2775
    assert {users.mode(p) for p in folder.iterdir()} == {0o664}


def test_sigkill_of_one_users_holder_frees_the_lock_for_another(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str
) -> None:
    holder = spawn(holder_user, DMM)
    waiter = spawn(users.OTHER_USER, DMM, "--timeout", "none", locked=False)
    assert waiter.expect("waiting")["holder"]["pid"] == holder.pid
    _kill(holder)
    got = waiter.expect("locked")
    assert got["record"]["user"] == users.OTHER_USER
    [state] = list_locks(station_dir)
    assert state.state == "held" and [h["pid"] for h in state.holders] == [waiter.pid]
    records = list((station_dir / "locks").glob("*.json"))
    assert [users.owner(r) for r in records] == [users.OTHER_USER]  # the dead holder's record was removed


def test_in_a_sticky_dir_a_dead_users_leftovers_neither_block_nor_confuse(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = station_dir / "locks"
    folder.mkdir()
    os.chown(folder, 0, users.shared_gid())
    os.chmod(folder, 0o3775)  # sticky: nobody may remove daemon's files
    holder = spawn(holder_user, DMM)
    _kill(holder)
    [state] = list_locks(station_dir)
    assert state.state == "stale" and state.holders[0]["pid"] == holder.pid

    taker = spawn(users.OTHER_USER, DMM)  # cannot remove the dead holder's record or lock file: still gets the lock
    [state] = list_locks(station_dir)
    assert state.state == "held" and [h["pid"] for h in state.holders] == [taker.pid]
    listed = users.run_cli(users.OTHER_USER, station_dir, "locks", "--json")
    assert listed.returncode == EXIT_OK, listed.stderr
    [lock] = json.loads(listed.stdout)["locks"]
    assert lock["state"] == "held" and [h["user"] for h in lock["holders"]] == [users.OTHER_USER]
    taker.send("release")
    taker.expect("released")
    taker.close()

    [state] = list_locks(station_dir)
    assert state.state == "stale" and [h["pid"] for h in state.holders] == [holder.pid]
    cleanup = users.run_cli(users.OTHER_USER, station_dir, "locks", "release", DMM)
    assert cleanup.returncode == EXIT_REFUSED and "Traceback" not in cleanup.stderr
    assert len(cleanup.stderr.splitlines()) == 1 and holder_user in cleanup.stderr
    assert "sticky" in cleanup.stderr and "free to take" in cleanup.stderr
    code, out, _ = _as_root(station_dir, capsys, "locks", "release", DMM)
    assert code == EXIT_OK and f"pid {holder.pid}" in out
    assert list_locks(station_dir) == []


def test_force_on_another_users_live_lock_is_refused_and_roots_succeeds(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = spawn(holder_user, DMM, "--role", "dmm")
    refused = users.run_cli(users.OTHER_USER, station_dir, "locks", "release", DMM, "--force", "--json")
    doc = json.loads(refused.stdout)
    assert refused.returncode == EXIT_REFUSED and doc["error"] == "not_permitted"
    assert doc["holders"][0]["pid"] == holder.pid and f"user {holder_user}" in doc["message"]
    assert "Traceback" not in refused.stderr
    plain = users.run_cli(users.OTHER_USER, station_dir, "locks", "release", DMM)
    assert plain.returncode == EXIT_REFUSED and f"only {holder_user} or root" in plain.stderr
    holder.send("check")
    holder.expect("ok")  # still held

    code, out, _ = _as_root(station_dir, capsys, "locks", "release", DMM, "--force", "--json")
    assert code == EXIT_OK and json.loads(out)["action"] == "broken"
    holder.send("check")
    assert isinstance(procs.unpickle(holder.expect("lost")["error"]), LockLost)


def test_force_by_the_holders_own_user_is_allowed(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str
) -> None:
    holder = spawn(holder_user, DMM)
    broke = users.run_cli(holder_user, station_dir, "locks", "release", DMM, "--force", "--json")
    assert broke.returncode == EXIT_OK, broke.stderr
    assert json.loads(broke.stdout)["action"] == "broken"
    holder.send("check")
    holder.expect("lost")


def test_anyone_in_the_group_may_clean_up_a_dead_users_lock(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str
) -> None:
    holder = spawn(holder_user, DMM)
    _kill(holder)
    cleaned = users.run_cli(users.OTHER_USER, station_dir, "locks", "release", DMM, "--force", "--json")
    assert cleaned.returncode == EXIT_OK, cleaned.stderr
    doc = json.loads(cleaned.stdout)
    assert doc["action"] == "cleaned" and doc["holders"][0]["user"] == holder_user
    assert list_locks(station_dir) == []


def test_force_by_root_library_call(spawn: Callable[..., Any], station_dir: Path, holder_user: str) -> None:
    holder = spawn(holder_user, DMM)
    assert release_lock(station_dir, DMM, force=True).action == "broken"
    holder.send("check")
    holder.expect("lost")


# --------------------------------------------------------------------------- permission problems


def test_a_user_outside_the_group_gets_access_denied_naming_path_owner_and_fix(
    spawn: Callable[..., Any], station_dir: Path, holder_user: str
) -> None:
    spawn(holder_user, DMM, umask=0o027)  # locks/ is 2770 now
    outsider = spawn(users.OTHER_USER, "GPIB0::17::INSTR", locked=False, in_group=False)
    said = outsider.expect("error")
    err = procs.unpickle(said["error"])
    assert isinstance(err, AccessDenied) and isinstance(err, PermissionError) and isinstance(err, LitmusError)
    assert err.path == str(station_dir / "locks") and err.owner == holder_user and err.group == users.SHARED_GROUP
    assert f"add user {users.OTHER_USER} to group {users.SHARED_GROUP}" in str(err)
    assert "docs/locking.md" in str(err)


def test_a_data_dir_not_set_up_for_sharing_says_how_to(station_dir: Path) -> None:
    private = station_dir / "private"
    private.mkdir()
    os.chown(private, 0, 0)
    os.chmod(private, 0o755)  # root's alone: group root, no setgid
    with LockOwner(private, session="root") as owner:
        owner.acquire(DMM)
    child = procs.Child(private, DMM, as_user=users.as_user(users.OTHER_USER))
    try:
        err = procs.unpickle(child.expect("error")["error"])
    finally:
        child.close()
    assert isinstance(err, AccessDenied) and err.owner == "root" and err.path == str(private / "locks")
    assert "chmod 2775" in str(err) and "several users" in str(err)
    listed = users.run_cli(users.OTHER_USER, private, "locks")
    assert listed.returncode == EXIT_OK and "free" in listed.stdout  # reading needs no write access


def test_unreadable_lock_file_is_access_denied_not_a_traceback(station_dir: Path) -> None:
    folder = station_dir / "locks"
    folder.mkdir()
    lock = folder / f"{lock_key(DMM)}.lock"
    lock.write_text(DMM)
    os.chmod(lock, 0o600)  # as an old version under umask 077 left it
    listed = users.run_cli(users.OTHER_USER, station_dir, "locks")
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert str(lock) in listed.stderr and "owner root" in listed.stderr and "chmod g+rw" in listed.stderr
    acquire = users.run_cli(users.OTHER_USER, station_dir, "locks", "release", DMM)
    assert acquire.returncode == EXIT_REFUSED and "Traceback" not in acquire.stderr and str(lock) in acquire.stderr


# --------------------------------------------------------------------------- sessions


def test_a_session_of_one_user_is_listed_and_shown_by_the_other(station_dir: Path, holder_user: str) -> None:
    wrote = users.run_python(holder_user, HELPERS / "session.py", str(station_dir), "aaaa1111-daemon")
    assert wrote.returncode == 0, wrote.stderr
    listed = users.run_cli(users.OTHER_USER, station_dir, "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["outcome"]) for r in json.loads(listed.stdout)] == [("aaaa1111-daemon", "passed")]
    shown = users.run_cli(users.OTHER_USER, station_dir, "show", "aaaa")
    assert shown.returncode == 0 and "Session aaaa1111-daemon" in shown.stdout


def test_sessions_of_both_users_in_a_prepared_sessions_dir(station_dir: Path, holder_user: str) -> None:
    sessions = station_dir / "sessions"
    sessions.mkdir()
    os.chmod(sessions, 0o2775)  # as docs/locking.md prepares it
    for user, session in ((holder_user, "aaaa1111-a"), (users.OTHER_USER, "bbbb2222-b")):
        wrote = users.run_python(user, HELPERS / "session.py", str(station_dir), session)
        assert wrote.returncode == 0, wrote.stderr
        assert users.owner(sessions / session) == user and (sessions / session).stat().st_gid == users.shared_gid()
    for user in (holder_user, users.OTHER_USER):
        listed = users.run_cli(user, station_dir, "sessions", "--json")
        assert listed.returncode == 0, listed.stderr
        assert sorted(r["id"] for r in json.loads(listed.stdout)) == ["aaaa1111-a", "bbbb2222-b"]
    assert stat.S_IMODE((sessions / "aaaa1111-a" / "events.jsonl").stat().st_mode) & 0o040


def test_a_second_user_can_start_a_session_in_a_fresh_shared_data_dir(station_dir: Path, holder_user: str) -> None:
    for user, session in ((holder_user, "aaaa1111-a"), (users.OTHER_USER, "bbbb2222-b")):
        wrote = users.run_python(user, HELPERS / "session.py", str(station_dir), session, umask=0o077)
        assert wrote.returncode == 0, wrote.stderr
    listed = users.run_cli(holder_user, station_dir, "sessions", "--json")
    assert sorted(r["id"] for r in json.loads(listed.stdout)) == ["aaaa1111-a", "bbbb2222-b"]
