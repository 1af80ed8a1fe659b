"""The fleet store against a real PostgreSQL: migrations, idempotent shipping, outages, crashes, hostile files."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pgserver import Cluster, missing_reason
from recordhelpers import Events, m

from pytest_litmus.dburl import redact_url
from pytest_litmus.errors import FleetNeedsExtra, FleetNotConfigured, FleetNotMigrated, FleetUnavailable
from pytest_litmus.fleet import VERSION, connect, migrate, pending, ship

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def store(postgres_url: str) -> Iterator[Any]:
    conn = connect(postgres_url)
    migrate(conn, postgres_url)
    yield conn
    conn.close()


def counts(conn: Any) -> dict[str, int]:
    tables = ("sessions", "units", "attempts", "measurements", "attachments", "events")
    return {t: conn.execute(f"SELECT count(*) FROM litmus.{t}").fetchone()[0] for t in tables}


#: What :func:`session` stores.
ONE_SESSION = {"sessions": 1, "units": 1, "attempts": 2, "measurements": 3, "attachments": 1, "events": 10}


def session(data_dir: Path, sid: str = "s-1", dut: str = "SN1", station: str = "cell-7") -> Events:
    e = Events(data_dir, sid).started(dut, station=station, mock=False)
    e.test("t.py::test_a", "passed", m("vout", 3.3), dut=dut)
    e.test("t.py::test_b", "failed", m("vout", 3.6, "failed"), m("iq", 0.1, units="A"), dut=dut)
    e.add("Attachment", name="scope", path="attachments/scope.png", mime="image/png", size=10, sha256="ab",
          nodeid="t.py::test_b", dut=dut, attempt=1)  # fmt: skip
    return e.ended("failed")


# --------------------------------------------------------------------------- schema


def test_migrate_creates_the_schema_once_and_reports_the_version(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        assert migrate(conn, postgres_url) == (0, VERSION)
        assert migrate(conn, postgres_url) == (VERSION, VERSION)
        assert conn.execute("SELECT count(*) FROM litmus.schema_version").fetchone()[0] == VERSION
        views = {
            r[0] for r in conn.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'litmus'")
        }
    assert views == {"tests", "unit_results", "daily_yield", "measurement_values"}


def test_two_migrations_at_once_apply_it_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(postgres_url) as conn:
                migrate(conn, postgres_url)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM litmus.schema_version").fetchone()[0] == VERSION


def test_shipping_into_an_unmigrated_store_says_to_migrate_and_keeps_it_pending(
    postgres_url: str, tmp_path: Path
) -> None:
    session(tmp_path).write()
    report = ship(postgres_url, tmp_path)
    assert isinstance(report.error, FleetNotMigrated)
    assert "litmus fleet migrate" in str(report.error)
    assert [p.session for p in report.pending] == ["s-1"]


def test_a_store_newer_than_this_litmus_is_refused(store: Any, postgres_url: str, tmp_path: Path) -> None:
    store.execute(
        "INSERT INTO litmus.schema_version (version, store) SELECT 99, store FROM litmus.schema_version LIMIT 1"
    )
    session(tmp_path).write()
    report = ship(postgres_url, tmp_path)
    assert isinstance(report.error, FleetNotMigrated) and "upgrade pytest-litmus" in str(report.error)
    with pytest.raises(FleetNotMigrated):
        migrate(store, postgres_url)


# --------------------------------------------------------------------------- shipping


def test_a_session_is_stored_with_its_units_attempts_measurements_and_attachments(
    store: Any, postgres_url: str, tmp_path: Path
) -> None:
    session(tmp_path).write()
    report = ship(postgres_url, tmp_path)
    assert report.error is None and report.pending == [] and len(report.shipped) == 1
    assert counts(store) == ONE_SESSION
    row = store.execute("SELECT station, outcome, mock, dut, events FROM litmus.sessions").fetchone()
    assert row == ("cell-7", "failed", False, "SN1", 10)
    assert store.execute("SELECT verdict FROM litmus.unit_results").fetchone() == ("failed",)
    failed = store.execute("SELECT name, value, low, high FROM litmus.measurements WHERE outcome = 'failed'").fetchall()
    assert failed == [("vout", 3.6, 3.2, 3.4)]
    types = [r[0] for r in store.execute("SELECT type FROM litmus.events ORDER BY seq")]
    assert types[0] == "SessionStarted" and types[-1] == "SessionEnded"
    assert store.execute("SELECT min(ts) IS NOT NULL FROM litmus.events").fetchone() == (True,)
    assert pending(tmp_path) == []


def test_a_session_shipped_twice_is_stored_once(store: Any, postgres_url: str, tmp_path: Path) -> None:
    session(tmp_path).write()
    ship(postgres_url, tmp_path)
    before = counts(store)
    (tmp_path / "fleet").rename(tmp_path / "fleet-notes-lost")  # the notes are gone: everything looks pending
    assert [p.why for p in pending(tmp_path)] == ["never shipped"]
    again = ship(postgres_url, tmp_path)
    assert [s.already for s in again.shipped] == [True]
    assert counts(store) == before


def test_two_shippers_of_one_session_at_once_store_it_once(store: Any, postgres_url: str, tmp_path: Path) -> None:
    session(tmp_path).write()
    blocker = lock_table(postgres_url, "events")
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda: reports.append(ship(postgres_url, tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for_waiters(postgres_url, 2)
    blocker.execute("ROLLBACK")
    blocker.close()
    for t in threads:
        t.join()
    assert [r.error for r in reports] == [None, None] and all(not r.failed for r in reports)
    assert sorted(s.already for r in reports for s in r.shipped) == [False, True]
    assert counts(store)["events"] == 10 and counts(store)["measurements"] == 3


def test_a_partly_shipped_session_is_completed_not_duplicated(store: Any, postgres_url: str, tmp_path: Path) -> None:
    full = session(tmp_path)
    path = full.write()
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:6]) + b"\n" + lines[6][:20])  # a running session: a torn last line
    first = ship(postgres_url, tmp_path)
    assert first.shipped[0].events == 6
    assert store.execute("SELECT outcome, torn FROM litmus.sessions").fetchone() == ("incomplete", True)
    assert [p.why.split(" (")[0] for p in pending(tmp_path)] == []
    full.write()
    assert [p.why.split(" (")[0] for p in pending(tmp_path)] == ["grew since shipped"]
    second = ship(postgres_url, tmp_path)
    assert second.shipped[0].events == 4
    assert counts(store) == ONE_SESSION
    assert store.execute("SELECT outcome, torn, events FROM litmus.sessions").fetchone() == ("failed", False, 10)


def test_a_crashed_session_is_shipped_incomplete(store: Any, postgres_url: str, project: Path) -> None:
    """A real session killed with SIGKILL: what it wrote is shipped, its unit ``incomplete``."""
    script = (
        "import os, signal\n"
        "from pytest_litmus import connect\n"
        "s = connect('cell-7', mock=True).start()\n"
        "s.emit('TestStarted', nodeid='t::a', attempt=1)\n"
        "s.emit('Measurement', name='vout', value=3.3, outcome='passed', nodeid='t::a', attempt=1)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    home = project / "home"
    report = ship(postgres_url, home)
    assert report.error is None and len(report.shipped) == 1
    assert store.execute("SELECT outcome, mock FROM litmus.sessions").fetchone() == ("incomplete", True)
    assert store.execute("SELECT verdict FROM litmus.units").fetchone() == ("incomplete",)
    assert store.execute("SELECT name, value FROM litmus.measurements").fetchall() == [("vout", 3.3)]


def test_a_shipper_killed_mid_ship_leaves_nothing_half_stored(store: Any, postgres_url: str, tmp_path: Path) -> None:
    session(tmp_path).write()
    blocker = lock_table(postgres_url, "measurements")
    env = {**os.environ, "LITMUS_FLEET": postgres_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_litmus.cli", "--data-dir", str(tmp_path), "ship"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_waiters(postgres_url, 1)  # its session row and events are written, not committed
        proc.kill()
    finally:
        proc.communicate(timeout=60)  # reaps it and closes its pipes
    blocker.execute("ROLLBACK")
    blocker.close()
    assert counts(store)["sessions"] == 0 and counts(store)["events"] == 0
    assert [p.session for p in pending(tmp_path)] == ["s-1"]
    report = ship(postgres_url, tmp_path)
    assert report.error is None
    assert counts(store)["events"] == 10 and counts(store)["measurements"] == 3


def test_the_server_stopped_mid_ship_leaves_it_pending_and_the_next_ship_resumes(tmp_path: Path) -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = Cluster()
    try:
        url = cluster.database("outage")
        with connect(url) as conn:
            migrate(conn, url)
            conn.execute("CHECKPOINT")  # the test cluster runs with synchronous_commit=off: make it durable
        session(tmp_path, "s-1").write()
        session(tmp_path, "s-2", dut="SN2").write()
        blocker = lock_table(url, "events")  # held until the server stops
        reports: list[Any] = []
        shipper = threading.Thread(target=lambda: reports.append(ship(url, tmp_path)))
        shipper.start()
        wait_for_waiters(url, 1)
        cluster.halt()
        shipper.join()
        blocker.close()
        (report,) = reports
        assert isinstance(report.error, FleetUnavailable) and report.shipped == []
        assert sorted(p.session for p in report.pending) == ["s-1", "s-2"]
        down = ship(url, tmp_path)  # the server is down: nothing shipped, all pending, no exception
        assert isinstance(down.error, FleetUnavailable) and len(down.pending) == 2
        assert "2 sessions pending" in str(down.error)
        cluster.start()
        again = ship(url, tmp_path)
        assert again.error is None and len(again.shipped) == 2 and again.pending == []
        with connect(url) as conn:
            assert counts(conn)["events"] == 20 and counts(conn)["sessions"] == 2
    finally:
        cluster.stop()


def lock_table(url: str, table: str) -> Any:
    """A connection holding ``litmus.<table>`` locked in an open transaction (shippers wait on it)."""
    blocker = connect(url)
    blocker.execute("BEGIN")
    blocker.execute(f"LOCK TABLE litmus.{table} IN ACCESS EXCLUSIVE MODE")
    return blocker


def wait_for_waiters(url: str, n: int) -> None:
    """Until ``n`` litmus-fleet connections wait on a lock (a condition, not a sleep)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100_000):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'litmus-fleet' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row[0] >= n:
                return
    pytest.fail(f"{n} shippers never waited on the lock")


# --------------------------------------------------------------------------- hostile files, bad settings


def test_hostile_event_files_are_stored_as_far_as_they_can_be(store: Any, postgres_url: str, tmp_path: Path) -> None:
    e = Events(tmp_path, "evil").started("SN\x00X", station="cell\ud800-7", mock=False)
    e.measure(name="nul", value="a\x00b", nodeid="t::a", dut="SN\x00X")
    e.measure(name="nan", value=float("nan"), limits={"low": float("inf"), "note": "\ud83d"})
    e.measure(name=42, value={"deep": [[[]]]}, units=["V"])
    e.measure(name="huge", value=10**400)
    e.measure(name="bool", value=True)
    e.raw(json.dumps({"seq": 3, "ts": 1.0, "session": "evil", "type": "Duplicate"}))  # a seq seen before
    e.raw(json.dumps({"seq": "7", "ts": "x", "session": "evil", "type": 5}))  # seq not an integer
    e.raw(json.dumps({"seq": 2**70, "ts": 1e300, "session": "evil", "type": "Big"}))
    e.raw(json.dumps({"seq": 900, "ts": -1e300, "session": "evil", "type": "Nested", "x": [[[[[[]]]]]] * 3}))
    e.raw('\t{"seq": 901, "session": "evil", "type": "Tab\\\\"}')
    e.raw("not json")
    e.ended("passed").write()
    report = ship(postgres_url, tmp_path)
    assert report.error is None and report.failed == {}, report
    c = counts(store)
    assert c["events"] == 9 and c["measurements"] == 5  # 7 numbered, 900 and 901; not the duplicate, "7", 2**70
    values = dict(store.execute("SELECT name, coalesce(value::text, value_json::text) FROM litmus.measurements"))
    assert values["nul"] == '"a\ufffdb"' and values["nan"] == '"nan"' and values["42"] == '{"deep": [[[]]]}'
    assert values["bool"] == "true" and values["huge"].startswith("1000")
    assert store.execute("SELECT station, dut, bad_lines FROM litmus.sessions").fetchone() == (
        "cell\ufffd-7",
        "SN\ufffdX",
        1,
    )
    assert store.execute("SELECT event->>'type' FROM litmus.events WHERE seq = 901").fetchone() == ("Tab\\",)


def test_an_unreachable_store_is_named_without_its_password(tmp_path: Path) -> None:
    from pgserver import free_port

    url = f"postgresql://op:s3cret@127.0.0.1:{free_port()}/lab"
    session(tmp_path).write()
    report = ship(url, tmp_path)
    assert isinstance(report.error, FleetUnavailable)
    text = str(report.error)
    assert "s3cret" not in text and "postgresql://op:***@127.0.0.1" in text and "1 session pending" in text
    assert redact_url("postgres://u:p@h/d?password=q&x=1") == "postgres://u:***@h/d?password=***&x=1"


def test_the_fleet_errors_pickle_with_their_fields() -> None:
    for err in (
        FleetUnavailable("postgresql://u:***@h/db", "refused", pending=2),
        FleetNotMigrated("postgresql://h/db", 0, 1),
        FleetNotConfigured(),
        FleetNeedsExtra(),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and copy.__dict__ == err.__dict__
    assert isinstance(FleetUnavailable("u", "r"), ConnectionError)
    assert isinstance(FleetNeedsExtra(), ImportError) and "pytest-litmus[fleet]" in str(FleetNeedsExtra())
