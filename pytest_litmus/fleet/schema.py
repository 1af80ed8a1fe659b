"""The fleet store's schema: numbered migrations, applied by ``litmus fleet migrate``, and the version check.

Everything lives in the PostgreSQL schema ``litmus`` (tables, views, the
version table ``litmus.schema_version``); nothing is created in ``public``.
A migration is one transaction under an advisory lock, so two stations
migrating at once apply it once. Shipping checks the version and refuses a
store that is not migrated (or newer than this litmus), saying what to run.
docs/fleet.md documents the tables and views for a lab's own dashboards.
"""

from __future__ import annotations

import uuid
from typing import Any

from pytest_litmus.errors import FleetNotMigrated

__all__ = ["MIGRATIONS", "VERSION", "check_version", "migrate", "store_id"]

#: A fixed advisory-lock key: one migration at a time per database.
_MIGRATE_LOCK = 0x6C69746D75730001

_V1 = """
CREATE TABLE litmus.sessions (
    session       text PRIMARY KEY,
    station       text,
    host          text,
    "user"        text,
    started       timestamptz,
    ended         timestamptz,
    outcome       text NOT NULL,            -- passed, failed, errored, terminated, incomplete
    mock          boolean NOT NULL,
    dut           text,
    limits_file   text,
    limits_sha256 text,
    events        bigint  NOT NULL,         -- events in the store
    lost          bigint  NOT NULL,         -- events missing from the event file
    bad_lines     bigint  NOT NULL,
    torn          boolean NOT NULL,
    file_size     bigint NOT NULL,          -- bytes of events.jsonl shipped
    shipped_at    timestamptz NOT NULL DEFAULT now(),
    started_event jsonb                      -- SessionStarted as written
);
CREATE INDEX sessions_station_started ON litmus.sessions (station, started);

CREATE TABLE litmus.units (
    session      text NOT NULL REFERENCES litmus.sessions ON DELETE CASCADE,
    unit         integer NOT NULL,          -- 0, 1, ... in order of appearance in the session
    dut          text,                      -- the serial (NULL: no unit named)
    part         text,
    unit_attempt bigint ,                   -- the unit's attempt across sessions
    slot         text,
    verdict      text NOT NULL,             -- passed, failed, errored, terminated, incomplete, skipped
    PRIMARY KEY (session, unit)
);
CREATE INDEX units_dut ON litmus.units (dut);

CREATE TABLE litmus.attempts (
    session   text NOT NULL,            -- rows below litmus.units: no foreign keys (a trigger a row slows COPY)
    unit      integer NOT NULL,
    nodeid    text NOT NULL,
    attempt   bigint  NOT NULL,
    final     boolean NOT NULL,             -- the test's last attempt (the counted one)
    outcome   text,                         -- NULL: it never ended
    duration  double precision,
    message   text,
    started   timestamptz,
    ended     timestamptz,
    PRIMARY KEY (session, unit, nodeid, attempt)
);

CREATE TABLE litmus.measurements (
    session    text NOT NULL,
    seq        bigint NOT NULL,
    unit       integer NOT NULL,
    dut        text,
    nodeid     text,
    attempt    bigint  NOT NULL,
    name       text NOT NULL,
    value      double precision,            -- NULL when the value is not a finite number
    value_json jsonb,                       -- the value as written, when it is not a finite number
    units      text,
    low        double precision,
    high       double precision,
    limits     jsonb,
    outcome    text NOT NULL,
    marginal   boolean NOT NULL,
    superseded boolean NOT NULL,            -- taken in an attempt a later one replaced
    ts         timestamptz,
    "where"    text,
    PRIMARY KEY (session, seq)
);
CREATE INDEX measurements_name_ts ON litmus.measurements (name, ts);

CREATE TABLE litmus.attachments (
    session    text NOT NULL,
    seq        bigint NOT NULL,
    unit       integer NOT NULL,
    dut        text,
    nodeid     text,
    attempt    bigint  NOT NULL,
    name       text NOT NULL,
    path       text NOT NULL,               -- relative to the session directory on the station
    mime       text,
    size       bigint,
    sha256     text,
    series     boolean NOT NULL,
    superseded boolean NOT NULL,
    ts         timestamptz,
    PRIMARY KEY (session, seq)
);

CREATE TABLE litmus.events (
    session text NOT NULL,
    seq     bigint NOT NULL,
    event   jsonb NOT NULL,                 -- the line as written (NUL and lone surrogates replaced)
    type    text GENERATED ALWAYS AS (
                CASE WHEN jsonb_typeof(event -> 'type') = 'string' THEN event ->> 'type' END) STORED,
    ts      timestamptz GENERATED ALWAYS AS (
                CASE WHEN jsonb_typeof(event -> 'ts') = 'number' THEN
                    CASE WHEN (event -> 'ts')::numeric BETWEEN 0 AND 1e11
                        THEN to_timestamp((event -> 'ts')::numeric::float8) END END) STORED,
    PRIMARY KEY (session, seq)
);

CREATE VIEW litmus.tests AS
    SELECT session, unit, nodeid, attempt AS attempts, outcome, duration, message, started, ended
    FROM litmus.attempts WHERE final;

CREATE VIEW litmus.unit_results AS
    SELECT u.session, u.unit, s.station, s.host, s.mock, u.dut, u.part, u.unit_attempt, u.slot, u.verdict,
           s.started, s.ended, s.outcome AS session_outcome
    FROM litmus.units u JOIN litmus.sessions s USING (session);

CREATE VIEW litmus.daily_yield AS
    SELECT station, date_trunc('day', started) AS day,
           count(*) AS tested,
           count(*) FILTER (WHERE verdict = 'passed') AS passed,
           count(*) FILTER (WHERE verdict = 'failed') AS failed,
           count(*) FILTER (WHERE verdict NOT IN ('passed', 'failed')) AS other,
           round(count(*) FILTER (WHERE verdict = 'passed')::numeric / count(*), 4) AS yield
    FROM litmus.unit_results
    WHERE NOT mock AND verdict <> 'skipped'
    GROUP BY station, day;

CREATE VIEW litmus.measurement_values AS
    SELECT m.session, s.station, s.host, s.mock, m.dut, m.nodeid, m.attempt, m.name, m.value, m.value_json,
           m.units, m.low, m.high, m.limits, m.outcome, m.marginal, m.ts, m.seq
    FROM litmus.measurements m JOIN litmus.sessions s USING (session)
    WHERE NOT m.superseded;
"""

#: ``(version, SQL)``, applied in order; a released migration never changes, a new one is appended.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1),)
#: The schema version this litmus writes and reads.
VERSION = MIGRATIONS[-1][0]


def _found(conn: Any) -> int:
    """The store's schema version (0: no litmus schema)."""
    row = conn.execute("SELECT to_regclass('litmus.schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM litmus.schema_version").fetchone()
    return int(row[0])


def migrate(conn: Any, url: str) -> tuple[int, int]:
    """Bring the store to :data:`VERSION`; returns ``(version before, version after)``.

    Idempotent: a migrated store is left as it is. A store newer than this
    litmus is a :class:`~pytest_litmus.errors.FleetNotMigrated`.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS litmus")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS litmus.schema_version ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), store uuid NOT NULL)"
        )
        before = _found(conn)
        if before > VERSION:
            raise FleetNotMigrated(url, before, VERSION)
        store = store_id(conn) or str(uuid.uuid4())
        for version, sql in MIGRATIONS:
            if version > before:
                conn.execute(sql)
                conn.execute("INSERT INTO litmus.schema_version (version, store) VALUES (%s, %s)", (version, store))
    return before, VERSION


def store_id(conn: Any) -> str | None:
    """The store's identity (a UUID made by its first migration), or None before it."""
    if _found(conn) == 0:
        return None
    row = conn.execute("SELECT store::text FROM litmus.schema_version ORDER BY version LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def check_version(conn: Any, url: str) -> str:
    """The store's identity when its schema is :data:`VERSION`; else :class:`~pytest_litmus.errors.FleetNotMigrated`."""
    found = _found(conn)
    if found != VERSION:
        raise FleetNotMigrated(url, found, VERSION)
    ident = store_id(conn)
    assert ident is not None
    return ident
