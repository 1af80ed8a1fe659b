"""The PostgreSQL side of the PostgreSQL lock backend: keys, the holder table's SQL, the connection.

:func:`pg_lock_key` names a resource's advisory lock; :class:`Link` is the one
connection a backend holds its locks on, and notices when it ends without a
round trip (:meth:`Link.poll`); :func:`redact_url` keeps passwords out of
messages. psycopg (``pytest-litmus[fleet]``) is imported on first use.
"""

from __future__ import annotations

import hashlib
import select
import threading
from types import ModuleType
from typing import Any

from pytest_litmus.dburl import redact_url
from pytest_litmus.errors import ExtraMissing, LitmusError
from pytest_litmus.visaname import resource_key

__all__ = [
    "CONNECT_TIMEOUT",
    "INSERT",
    "INSERT_ROW",
    "KEEPALIVES",
    "LIVE",
    "ROWS",
    "SCHEMA",
    "TABLE",
    "TRY",
    "UNLOCK",
    "WAIT",
    "Link",
    "Lost",
    "pg_lock_key",
    "psycopg",
    "redact_url",
]

#: The holder table; the fleet store's schema does not touch it.
TABLE = "litmus_lock_holders"
NAMESPACE = b"pytest-litmus instrument lock\x00"
#: Seconds a connection attempt may take, unless the URL says (``connect_timeout=``).
CONNECT_TIMEOUT = 5
#: TCP keepalives of the lock connection, unless the URL says: a dead server or network is noticed within ~11 s.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3"}

SCHEMA = f"""
CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    lock_key bigint NOT NULL,
    key text NOT NULL,
    resource text NOT NULL,
    mode text NOT NULL,
    backend_pid integer NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    record jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_lock_key ON {TABLE} (lock_key)
"""
#: Whether row ``h``'s backend holds its lock now (the server's lock table is the truth).
LIVE = """EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid = h.backend_pid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = h.lock_key)"""
TRY = {"exclusive": "SELECT pg_try_advisory_lock(%s)", "shared": "SELECT pg_try_advisory_lock_shared(%s)"}
#: The wait, one round trip (simple protocol: ``{millis}`` and ``{key}`` are ints): SET LOCAL lasts for this
#: implicit transaction only; a server's or role's statement_timeout would cut a long wait short, so it is off.
WAIT = {
    mode: f"SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = {{millis}}; SELECT {fn}({{key}})"
    for mode, fn in (("exclusive", "pg_advisory_lock"), ("shared", "pg_advisory_lock_shared"))
}
UNLOCK = {"exclusive": "pg_advisory_unlock", "shared": "pg_advisory_unlock_shared"}
INSERT = {
    # holding it exclusively, every other row of the lock is stale; sharing it, those whose backend lost it
    "exclusive": f"WITH gone AS (DELETE FROM {TABLE} h WHERE lock_key = %(k)s) ",
    "shared": f"WITH gone AS (DELETE FROM {TABLE} h WHERE lock_key = %(k)s AND NOT {LIVE}) ",
}
INSERT_ROW = (
    f"INSERT INTO {TABLE} (lock_key, key, resource, mode, backend_pid, record) "
    "VALUES (%(k)s, %(key)s, %(resource)s, %(mode)s, pg_backend_pid(), %(record)s) RETURNING id"
)
ROWS = (
    f"SELECT h.id, h.key, h.resource, h.backend_pid, h.record::text, "
    f"extract(epoch FROM now() - h.since)::float8, {LIVE} FROM {TABLE} h"
)


def pg_lock_key(resource: str) -> int:
    """The advisory lock key of a resource address: signed 64 bits of BLAKE2b of its canonical form."""
    canonical = resource_key(resource).encode()
    digest = hashlib.blake2b(NAMESPACE + canonical, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise ExtraMissing("fleet", "psycopg", "PostgreSQL instrument locks (locks: postgresql://...)") from None
    return psycopg


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):  # closed under us: the next probe says how
        return True


class Lost(Exception):
    """The lock connection ended; ``reason`` says how."""


class Link:
    """The connection that holds one backend's locks, and whether it still lives.

    ``mutex`` serialises its statements; the socket is read only under it.
    """

    def __init__(self, conn: Any, scrub: Any) -> None:
        self.conn = conn
        self.scrub = scrub
        self.mutex = threading.RLock()
        self.fd: int = conn.fileno()
        self.backend_pid: int = conn.info.backend_pid
        self.role: str = conn.info.user
        self.server_version: int = conn.info.server_version
        #: Why the connection ended, once it has.
        self.lost: str | None = None

    def poll(self) -> str | None:
        """Why the connection ended, or None; reads what the server sent unasked (no round trip otherwise)."""
        if self.lost is None and _readable(self.fd) and self.mutex.acquire(blocking=False):
            try:  # idle (we hold the mutex), yet readable: the server spoke first; hear it out
                if self.lost is None and _readable(self.fd):
                    self.run("SELECT 1")
            except (Lost, LitmusError):
                pass
            finally:
                self.mutex.release()
        return self.lost

    def run(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement; its rows. A dead connection raises :class:`Lost`."""
        errors = psycopg()
        with self.mutex:
            if self.lost is not None:
                raise Lost(self.lost)
            try:
                cursor = self.conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
            except errors.OperationalError as exc:
                if not (self.conn.broken or self.conn.closed):
                    raise
                self.lost = self.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                raise Lost(self.lost) from None

    def close(self) -> None:
        with self.mutex:
            if self.lost is None:
                self.lost = "closed by this session"
            self.conn.close()
