"""The PostgreSQL lock backend against a real throw-away server: locking, waiting, loss, listing, bad input."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pgserver import Cluster

from pytest_litmus.errors import (
    ExtraMissing,
    LitmusError,
    LockConnectionLost,
    LockLost,
    LockServerRefused,
    LockServerUnavailable,
    NoSuchLock,
    ResourceInUse,
)
from pytest_litmus.locks import LockOwner, PostgresBackend, pg_lock_key, redact_url

DMM = "TCPIP0::192.168.1.50::inst0::INSTR"
PSU = "GPIB0::17::INSTR"
#: A hang guard for waits that the test ends itself; never reached when the code works.
PATIENCE = 60.0


@pytest.fixture
def backends(postgres_url: str) -> Iterator[list[PostgresBackend]]:
    """Two holders on the server (two connections), closed after the test."""
    made = [PostgresBackend(postgres_url), PostgresBackend(postgres_url)]
    yield made
    for backend in made:
        backend.close()


def admin(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# --------------------------------------------------------------------------- keys and URLs


def test_lock_key_is_stable_and_canonical() -> None:
    # BLAKE2b of the canonical address: the same on every host and Python version (not hash())
    assert pg_lock_key(PSU) == pg_lock_key("GPIB::17::INSTR") == pg_lock_key("gpib0::17::instr")
    assert pg_lock_key(PSU) == 2084911531832564691
    assert pg_lock_key(PSU) != pg_lock_key(DMM)
    assert -(2**63) <= pg_lock_key(DMM) < 2**63


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://lab:s3cret@db.lab:5432/litmus", "postgresql://lab:***@db.lab:5432/litmus"),
        (
            "postgresql://lab@db/litmus?password=s3cret&sslmode=require",
            "postgresql://lab@db/litmus?password=***&sslmode=require",
        ),
        ("postgresql://lab:p%40ss@db/litmus", "postgresql://lab:***@db/litmus"),
        ("postgresql://db/litmus", "postgresql://db/litmus"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --------------------------------------------------------------------------- locking


def test_exclusive_excludes_and_names_the_holder(backends: list[PostgresBackend]) -> None:
    a, b = backends
    hold = a.acquire(PSU, holder={"session": "s-a", "station": "cell-7", "role": "psu"})
    assert hold.kind == "postgres" and hold.record["backend_pid"] > 0
    with pytest.raises(ResourceInUse) as info:
        b.acquire("GPIB::17::INSTR", timeout=0)  # the same instrument, another spelling
    holder = info.value.holder
    assert (holder["session"], holder["station"], holder["role"]) == ("s-a", "cell-7", "psu")
    assert holder["backend_pid"] == hold.record["backend_pid"]
    b.acquire(DMM, timeout=0).release()  # another resource: independent
    hold.release()
    hold.release()  # no-op once released
    b.acquire(PSU, timeout=0).release()


def test_shared_holders_share_and_exclude_a_writer(backends: list[PostgresBackend], postgres_url: str) -> None:
    a, b = backends
    c = PostgresBackend(postgres_url)
    try:
        first = a.acquire(DMM, "shared", holder={"session": "one"})
        second = b.acquire(DMM, "shared", holder={"session": "two"})
        with pytest.raises(ResourceInUse) as info:
            c.acquire(DMM, "exclusive", timeout=0)
        assert {h["session"] for h in info.value.holder["holders"]} == {"one", "two"}
        first.release()
        with pytest.raises(ResourceInUse):
            c.acquire(DMM, "exclusive", timeout=0)
        second.release()
        writer = c.acquire(DMM, "exclusive", timeout=0)
        with pytest.raises(ResourceInUse):
            a.acquire(DMM, "shared", timeout=0)
        writer.release()
    finally:
        c.close()


def test_a_waiter_wakes_on_release_and_reports_contention_once(backends: list[PostgresBackend]) -> None:
    a, b = backends
    hold = a.acquire(DMM, holder={"session": "first"})
    contended: list[dict[str, Any]] = []
    waiting = threading.Event()
    got: list[Any] = []

    def on_contended(holder: Any) -> None:
        contended.append(dict(holder))
        waiting.set()

    waiter = threading.Thread(target=lambda: got.append(b.acquire(DMM, timeout=None, on_contended=on_contended)))
    waiter.start()
    assert waiting.wait(PATIENCE)
    hold.release()
    waiter.join(PATIENCE)
    assert not waiter.is_alive() and got[0].held
    assert [h["session"] for h in contended] == ["first"]
    assert got[0].waited > 0


def test_a_timeout_ends_the_wait_with_resource_in_use(backends: list[PostgresBackend]) -> None:
    a, b = backends
    a.acquire(DMM, holder={"session": "keeper"})
    calls: list[Any] = []
    with pytest.raises(ResourceInUse) as info:
        b.acquire(DMM, timeout=0.05, on_contended=calls.append)
    assert info.value.waited >= 0.05 and info.value.holder["session"] == "keeper"
    assert len(calls) == 1
    # the session's own lock_timeout is untouched: the wait set it for its one statement
    assert b.link().run("SHOW lock_timeout") == [("0",)]


def test_a_wait_for_ever_ignores_the_servers_statement_timeout(backends: list[PostgresBackend]) -> None:
    a, b = backends
    b.link().run("SET statement_timeout = '20ms'")  # what a lab's server or role may impose
    hold = a.acquire(DMM)
    waiting = threading.Event()
    got: list[Any] = []
    waiter = threading.Thread(
        target=lambda: got.append(b.acquire(DMM, timeout=None, on_contended=lambda h: waiting.set()))
    )
    waiter.start()
    assert waiting.wait(PATIENCE)
    # the waiter outlives 20 ms: the release below is what ends its wait
    a.link().run("SELECT pg_sleep(0.1)")
    hold.release()
    waiter.join(PATIENCE)
    assert got and got[0].held


def test_owner_leases_are_reentrant_and_annotations_reach_the_row(postgres_url: str, tmp_path: Any) -> None:
    owner = LockOwner(tmp_path, session="s1", station="cell-7", backend=PostgresBackend(postgres_url))
    other = PostgresBackend(postgres_url)
    try:
        lease = owner.acquire(DMM, role="dmm")
        assert owner.acquire(DMM) is lease and lease.depth == 2 and lease.kind == "postgres"
        lease.annotate(nodeid="tests/test_x.py::test_rail")
        [state] = other.list()
        assert state.state == "held" and state.holders[0]["nodeid"] == "tests/test_x.py::test_rail"
        owner.release(DMM)
        assert other.list()[0].state == "held"  # one level left
        owner.close()
        assert other.list() == []
        other.acquire(DMM, timeout=0).release()
    finally:
        other.close()
        owner.close()


# --------------------------------------------------------------------------- losing a lock


def test_forced_release_ends_the_holders_session_and_check_raises(backends: list[PostgresBackend]) -> None:
    a, b = backends
    dmm = a.acquire(DMM, holder={"role": "dmm"})
    psu = a.acquire(PSU, holder={"role": "psu"})
    dmm.check()  # fine while held
    result = b.force_release(DMM)
    assert result.action == "broken" and result.holders[0]["role"] == "dmm"
    with pytest.raises(LockConnectionLost) as info:
        dmm.check()
    assert isinstance(info.value, LockLost) and info.value.role == "dmm"
    assert "administrator command" in info.value.reason
    with pytest.raises(LockLost):  # the whole session ended: every lock of it went
        psu.check()
    b.acquire(PSU, timeout=0).release()
    dmm.release()  # releasing a lost hold is quiet: the session can still end
    again = a.acquire(DMM, timeout=0)  # a new connection for what comes next
    again.check()
    assert pickle.loads(pickle.dumps(info.value)).reason == info.value.reason


def test_a_connection_killed_by_the_server_is_lock_lost(backends: list[PostgresBackend], postgres_url: str) -> None:
    a, _ = backends
    hold = a.acquire(DMM, holder={"role": "dmm"})
    admin(postgres_url, "SELECT pg_terminate_backend(%s, 5000)", (hold.record["backend_pid"],))
    with pytest.raises(LockConnectionLost):
        hold.check()


def test_server_gone_mid_session(postgres_cluster: Cluster) -> None:
    cluster = Cluster()  # a server of its own, to stop (postgres_cluster: skip where there is none)
    try:
        url = cluster.database("gone").replace("litmus@", "litmus:s3cret@")
        backend = PostgresBackend(url)
        hold = backend.acquire(DMM, holder={"role": "dmm"})
        cluster.stop()  # immediate shutdown: no goodbye to the clients
        with pytest.raises(LockConnectionLost) as info:
            hold.check()
        assert "s3cret" not in str(info.value) and "***" in str(info.value)
        hold.release()  # quiet: the lock went with the server
        with pytest.raises(LockServerUnavailable) as down:
            backend.acquire(PSU)
        assert "s3cret" not in str(down.value) and down.value.url.endswith("/gone")
        backend.close()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    from pgserver import free_port

    url = f"postgresql://lab:s3cret@127.0.0.1:{free_port()}/litmus"
    with pytest.raises(LockServerUnavailable) as info:
        PostgresBackend(url, connect_timeout=2).acquire(DMM)
    text = str(info.value)
    assert "s3cret" not in text and "postgresql://lab:***@127.0.0.1" in text and "refused" in text.lower()
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, LitmusError)
    assert pickle.loads(pickle.dumps(info.value)).url == info.value.url


@pytest.mark.parametrize("url", ["postgresql://h:notaport/db", "postgresql://lab@db/x?nonsense_option=1"])
def test_a_url_libpq_refuses_is_a_clear_error(url: str) -> None:
    with pytest.raises(LockServerUnavailable) as info:
        PostgresBackend(url, connect_timeout=1).acquire(DMM)
    assert info.value.url == redact_url(url)


# --------------------------------------------------------------------------- listing and releasing


def test_list_shows_stale_rows_once_and_cleans_them(backends: list[PostgresBackend], postgres_url: str) -> None:
    a, b = backends
    hold = a.acquire(DMM, holder={"session": "dead"})
    # the holder's connection dies without its release: its row stays, its lock does not
    admin(postgres_url, "SELECT pg_terminate_backend(%s, 5000)", (hold.record["backend_pid"],))
    [state] = b.list()
    assert (state.state, state.holders[0]["session"]) == ("stale", "dead")
    assert b.list() == []  # cleaned


def test_force_release_cleans_a_dead_holder_and_refuses_a_live_one_without_force(
    backends: list[PostgresBackend], postgres_url: str
) -> None:
    a, b = backends
    hold = a.acquire(DMM, holder={"session": "live"})
    with pytest.raises(ResourceInUse) as info:
        b.force_release(DMM, only_stale=True)
    assert info.value.holder["session"] == "live"
    hold.check()  # untouched
    hold.release()
    with pytest.raises(NoSuchLock):
        b.force_release(DMM)
    gone = a.acquire(PSU, holder={"session": "gone"})
    admin(postgres_url, "SELECT pg_terminate_backend(%s, 5000)", (gone.record["backend_pid"],))
    result = b.force_release(gone.record["key"], only_stale=True)  # by the key as listed
    assert result.action == "cleaned" and result.holders[0]["session"] == "gone"


def test_a_role_that_may_not_end_the_holders_session_is_refused(
    backends: list[PostgresBackend], postgres_url: str
) -> None:
    a, _ = backends
    admin(postgres_url, "DROP ROLE IF EXISTS bystander")
    admin(postgres_url, "CREATE ROLE bystander LOGIN")
    hold = a.acquire(DMM, holder={"session": "mine"})
    admin(postgres_url, "GRANT SELECT, INSERT, UPDATE, DELETE ON litmus_lock_holders TO bystander")
    other = PostgresBackend(postgres_url.replace("//litmus@", "//bystander@"))
    try:
        with pytest.raises(LockServerRefused) as info:
            other.force_release(DMM)
        assert "pg_signal_backend" in str(info.value) and info.value.holder_user == "litmus"
        hold.check()  # still held
    finally:
        other.close()


def test_a_role_that_may_not_create_the_table_is_told_what_to_do(postgres_url: str) -> None:
    admin(postgres_url, "DROP ROLE IF EXISTS newcomer")
    admin(postgres_url, "CREATE ROLE newcomer LOGIN")
    admin(postgres_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    with pytest.raises(LockServerUnavailable) as info:
        PostgresBackend(postgres_url.replace("//litmus@", "//newcomer@")).acquire(DMM)
    assert "litmus_lock_holders" in str(info.value) and "newcomer" in str(info.value)


# --------------------------------------------------------------------------- hostile input


def test_hostile_rows_do_not_break_listing(backends: list[PostgresBackend], postgres_url: str) -> None:
    a, b = backends
    hold = a.acquire(DMM, holder={"session": "real"})
    pid = hold.record["backend_pid"]
    # rows someone else wrote: not an object, a JSON string, a pid of the wrong type
    for record in ('"just text"', "[1, 2]", '{"pid": "nine", "session": {"nested": true}}'):
        admin(
            postgres_url,
            "INSERT INTO litmus_lock_holders (lock_key, key, resource, mode, backend_pid, record) "
            "VALUES (%s, %s, %s, 'exclusive', %s, %s::jsonb)",
            (pg_lock_key(DMM), hold.record["key"], DMM, pid, record),
        )
    [state] = b.list()
    assert state.state == "held" and len(state.holders) == 4
    assert any("damaged" in h for h in state.holders)
    with pytest.raises(ResourceInUse):
        b.acquire(DMM, timeout=0)


def test_another_programs_table_of_that_name_is_named(postgres_url: str) -> None:
    admin(postgres_url, "CREATE TABLE litmus_lock_holders (something text)")
    with PostgresBackend(postgres_url) as backend, pytest.raises(LockServerUnavailable) as info:
        backend.acquire(DMM)
    assert "litmus_lock_holders" in str(info.value)


@pytest.mark.parametrize("timeout", [-1, "5", True, float("nan")])
def test_bad_timeouts_are_refused_before_any_connection(timeout: Any) -> None:
    with pytest.raises(ValueError):
        PostgresBackend("postgresql://nobody@127.0.0.1:1/x").acquire(DMM, timeout=timeout)


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "a\x00b", "x" * 300])
def test_bad_names_are_refused_before_any_connection(name: str) -> None:
    with pytest.raises(LitmusError):
        PostgresBackend("postgresql://nobody@127.0.0.1:1/x").force_release(name)


def test_without_psycopg_the_error_names_the_extra(tmp_path: Any) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import pytest_litmus.plugin\n"
        "from pytest_litmus.locks import PostgresBackend\n"
        "try:\n"
        "    PostgresBackend('postgresql://x@127.0.0.1:1/db').acquire('GPIB0::1::INSTR')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE)
    assert out.stdout.startswith("ExtraMissing") and "pip install 'pytest-litmus[fleet]'" in out.stdout, out.stderr
    assert issubclass(ExtraMissing, ImportError)


def test_importing_the_plugin_does_not_import_psycopg() -> None:
    code = "import sys, pytest_litmus.plugin, pytest_litmus.locks; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE)
    assert out.stdout.strip() == "False", out.stderr
