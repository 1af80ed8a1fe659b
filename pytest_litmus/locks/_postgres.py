"""The PostgreSQL backend: instrument locks as advisory locks of one server, for test PCs that share instruments.

``locks: postgresql://...`` in ``litmus.yaml`` (or ``LITMUS_LOCKS``) selects it.
Each resource is one 64-bit advisory lock key (:func:`pg_lock_key`, BLAKE2b of
the canonical address: the same on every host and Python). A session's locks
are session-level advisory locks held by one connection, exclusive
(``pg_advisory_lock``) or shared (``pg_advisory_lock_shared``), so a holder
that dies (process or machine) frees them when the server ends its connection:
at once for a process (its socket closes), after the TCP keepalives for a
machine. The server decides who holds what; a row per hold in the unlogged
table ``litmus_lock_holders`` only says who (user, host, pid, session, station,
role, test, since, the server backend's pid). A row whose backend no longer
holds the lock is stale: listings show it once and delete it.

Waiting uses the server's own lock queue: ``pg_advisory_lock`` with
``lock_timeout`` set for that one statement. The server wakes a waiter the
moment the lock is free, whether released or freed by a dead holder's
connection, which a LISTEN/NOTIFY scheme misses (a killed holder notifies
nobody) unless it polls too. The wait occupies the session's connection.

``release --force`` ends the holder's server session (``pg_terminate_backend``),
which frees every lock of that session. The holder notices without a round trip
per call: :meth:`PostgresHold.check` looks at its connection's socket (one
``select`` with no timeout); anything the server sends unasked (its
termination notice, end of file, a keepalive failure) is read at once, and a
dead connection raises :class:`~pytest_litmus.errors.LockConnectionLost`.

psycopg (``pytest-litmus[fleet]``) is imported on first use.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from pytest_litmus.dburl import scrub_secrets, url_secrets
from pytest_litmus.errors import (
    LockConnectionLost,
    LockServerRefused,
    LockServerUnavailable,
    NoSuchLock,
    ResourceInUse,
)
from pytest_litmus.locks._api import (
    Hold,
    LockBackend,
    LockMode,
    LockState,
    OnContended,
    ReleaseResult,
    State,
    holder_summary,
    now_iso,
)
from pytest_litmus.locks._pgsql import (
    CONNECT_TIMEOUT,
    INSERT,
    INSERT_ROW,
    KEEPALIVES,
    LIVE,
    ROWS,
    SCHEMA,
    TABLE,
    TRY,
    UNLOCK,
    WAIT,
    Link,
    Lost,
    pg_lock_key,
    psycopg,
    redact_url,
)
from pytest_litmus.locks._records import check_lock_name, lock_key

__all__ = ["TABLE", "PostgresBackend", "PostgresHold", "pg_lock_key", "redact_url"]

#: How long ``release --force`` waits for the holder's server session to end.
TERMINATE_WAIT = 5.0


class PostgresHold(Hold):
    """A held advisory lock: the connection holding it, its key and its holder row."""

    backend: PostgresBackend

    def __init__(
        self,
        backend: PostgresBackend,
        resource: str,
        mode: LockMode,
        record: dict[str, Any],
        link: Link,
        key: int,
        row: int,
    ) -> None:
        super().__init__(backend, resource, mode, record)
        self.link = link
        self.pg_key = key
        self.row = row

    def check(self) -> None:
        """Raise :class:`LockConnectionLost` if the connection holding the lock ended (one ``select``, ~2 us)."""
        if self.released:
            return
        lost = self.link.lost or self.link.poll()
        if lost is not None:
            raise LockConnectionLost(self.resource, self.record.get("role") or None, self.backend.shown, lost)


class PostgresBackend(LockBackend):
    """Advisory locks of the PostgreSQL server at ``url``: one connection per backend holds its locks.

    One backend is one holder: two backends exclude each other, two holds of
    one backend on one resource do not (PostgreSQL session locks are re-entrant).
    Use one per session; :meth:`close` ends its connection (and any lock left).
    """

    kind = "postgres"

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.url = url.strip()
        #: The URL as shown in messages and listings: its password as ``***``.
        self.shown = redact_url(self.url)
        self.connect_timeout = connect_timeout
        self._secrets = url_secrets(self.url)
        self._link: Link | None = None
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresBackend({self.shown!r})"

    def scrub(self, text: str) -> str:
        """``text`` with this URL's password replaced by ``***`` (a driver message may quote the URL)."""
        return scrub_secrets(text, self._secrets)

    # ------------------------------------------------------------------ the connection

    def link(self) -> Link:
        """The live connection, opened (and the holder table made) on first use or after the last one ended."""
        with self._mutex:
            if self._link is None or self._link.lost is not None:
                self._link = self._connect()
            return self._link

    def _connect(self) -> Link:
        pg = psycopg()
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.url)
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, f"not a usable PostgreSQL URL: {self.scrub(str(exc))}") from None
        params.setdefault("connect_timeout", str(max(1, math.ceil(self.connect_timeout))))
        params.setdefault("application_name", "litmus locks")
        for name, value in KEEPALIVES.items():
            params.setdefault(name, value)
        try:
            conn = pg.connect(autocommit=True, **params)
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, self.scrub(" ".join(str(exc).split()))) from None
        link = Link(conn, self.scrub)
        try:
            self._make_table(link)
        except BaseException:
            conn.close()
            raise
        return link

    def _make_table(self, link: Link) -> None:
        """Create the holder table if missing: once per server, under a transaction-level advisory lock."""
        pg = psycopg()
        try:
            if link.run("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))[0][0]:
                return
            with link.mutex, link.conn.transaction():
                link.conn.execute("SELECT pg_advisory_xact_lock(%s)", (pg_lock_key(f"litmus:{TABLE}"),))
                for statement in SCHEMA.split(";"):
                    link.conn.execute(statement)
        except pg.errors.InsufficientPrivilege as exc:
            raise LockServerUnavailable(
                self.shown,
                f"the holder table {TABLE} does not exist and role {link.role} may not create it ({exc}); "
                "create it once as the database owner (docs/locking.md, Locks in PostgreSQL)",
            ) from None
        except Lost as exc:
            raise LockServerUnavailable(self.shown, str(exc)) from None
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, self._describe(exc)) from None

    def _query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement for listing and releasing; problems as :class:`LockServerUnavailable`."""
        pg = psycopg()
        try:
            return self.link().run(sql, params)
        except Lost as exc:
            raise LockServerUnavailable(self.shown, str(exc)) from None
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, self._describe(exc)) from None

    def _describe(self, exc: BaseException) -> str:
        text = self.scrub(" ".join(str(exc).split()))
        if isinstance(exc, psycopg().errors.UndefinedColumn):
            text += f" (is {TABLE} another program's table? litmus owns that name)"
        return text

    def close(self) -> None:
        """End the connection: the server frees whatever locks it still holds."""
        with self._mutex:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    # ------------------------------------------------------------------ acquiring

    def _acquire(
        self,
        resource: str,
        mode: LockMode,
        timeout: float | None,
        record: dict[str, Any],
        on_contended: OnContended | None,
    ) -> tuple[Hold | None, float]:
        """One try; then, if it may wait, the server's lock queue with ``lock_timeout``."""
        pg = psycopg()
        start = time.monotonic()
        key = pg_lock_key(resource)
        link = self.link()
        with link.mutex:
            try:
                got = bool(link.run(TRY[mode], (key,))[0][0])
                if not got:
                    if timeout == 0:
                        return None, 0.0
                    if on_contended is not None:
                        on_contended(holder_summary(self._holders(link, key)))
                    left = None if timeout is None else timeout - (time.monotonic() - start)
                    if left is not None and left <= 0:
                        return None, time.monotonic() - start
                    got = self._wait(link, key, mode, left)
                    if not got:
                        return None, time.monotonic() - start
                record.update(since=now_iso(), key=lock_key(resource), backend_pid=link.backend_pid)
                try:
                    row = link.run(INSERT[mode] + INSERT_ROW, self._row(key, resource, mode, record))[0][0]
                except BaseException:
                    self._unlock(link, key, mode)
                    raise
            except Lost as exc:
                raise LockServerUnavailable(
                    self.shown, f"the connection ended while locking {resource}: {exc}"
                ) from None
            except pg.Error as exc:
                raise LockServerUnavailable(self.shown, self._describe(exc)) from None
        return PostgresHold(self, resource, mode, record, link, key, int(row)), time.monotonic() - start

    def _wait(self, link: Link, key: int, mode: LockMode, left: float | None) -> bool:
        """Wait in the server's queue for ``left`` seconds (None: for ever); whether the lock was granted."""
        pg = psycopg()
        millis = 0 if left is None else max(1, math.ceil(left * 1000))
        try:
            link.run(WAIT[mode].format(millis=int(millis), key=int(key)))
        except pg.errors.LockNotAvailable:  # lock_timeout
            return False
        except pg.errors.QueryCanceled:  # cancelled by an administrator: not granted
            return False
        except BaseException:  # Ctrl-C: psycopg cancels the wait, which may have been granted just before
            self._unlock(link, key, mode)
            raise
        return True

    def _unlock(self, link: Link, key: int, mode: LockMode) -> None:
        """Best effort: give back a lock we may hold without a hold (``false``, no harm, if we do not)."""
        try:
            link.run(f"SELECT {UNLOCK[mode]}(%s)", (key,))
        except Exception:
            link.close()  # cannot tell: ending the connection frees it for sure

    @staticmethod
    def _row(key: int, resource: str, mode: LockMode, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "k": key,
            "key": lock_key(resource),
            "resource": resource,
            "mode": mode,
            "record": json.dumps(record, default=str),
        }

    # ------------------------------------------------------------------ holding and releasing

    def _release(self, hold: Hold) -> None:
        assert isinstance(hold, PostgresHold)
        sql = f"WITH gone AS (DELETE FROM {TABLE} WHERE id = %s) SELECT {UNLOCK[hold.mode]}(%s)"
        try:
            hold.link.run(sql, (hold.row, hold.pg_key))
        except Lost:  # the connection is gone, and the lock with it; its row is stale and listings drop it
            pass
        except psycopg().Error:
            hold.link.close()  # the lock must go: ending the connection guarantees it

    def _annotate(self, hold: Hold) -> None:
        assert isinstance(hold, PostgresHold)
        try:
            hold.link.run(
                f"UPDATE {TABLE} SET record = %s WHERE id = %s", (json.dumps(hold.record, default=str), hold.row)
            )
        except Lost:  # check() says so before the next instrument call
            pass

    # ------------------------------------------------------------------ who holds what

    def _holders(self, link: Link, key: int) -> list[dict[str, Any]]:
        rows = link.run(f"{ROWS} WHERE h.lock_key = %s AND {LIVE} ORDER BY h.since", (key,))
        return [_record(row) for row in rows]

    def holders(self, resource: str) -> list[dict[str, Any]]:
        pg = psycopg()
        try:
            return self._holders(self.link(), pg_lock_key(resource))
        except Lost as exc:
            raise LockServerUnavailable(self.shown, str(exc)) from None
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, self._describe(exc)) from None

    def list(self) -> list[LockState]:
        """``held``: a live session holds it; ``stale``: only rows of sessions gone (shown once, then deleted)."""
        rows = self._query(f"{ROWS} ORDER BY h.resource, h.since")
        by_key: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_key.setdefault(row[1], []).append(row)
        states = []
        stale_ids = []
        for key, found in by_key.items():
            live = [r for r in found if r[6]]
            stale_ids += [r[0] for r in found if not r[6]]
            state: State = "held" if live else "stale"
            shown = live or found
            held_for = float(live[0][5]) if live else None
            states.append(LockState(str(found[0][2]), key, state, [_record(r) for r in shown], held_for, self.shown))
        if stale_ids:
            self._delete_stale(stale_ids)
        return sorted(states, key=lambda s: s.resource)

    def _delete_stale(self, ids: Sequence[int]) -> None:
        self._query(f"DELETE FROM {TABLE} h WHERE id = ANY(%s) AND NOT {LIVE}", (ids,))

    def force_release(self, resource: str, *, only_stale: bool = False) -> ReleaseResult:
        """Delete a dead holder's rows (``cleaned``), or end each live holder's server session (``broken``).

        Ending a session frees every lock it holds, not only this one. The
        server decides who may: the holder's role, a superuser, or a member of
        ``pg_signal_backend`` (else :class:`~pytest_litmus.errors.LockServerRefused`).
        """
        check_lock_name(resource)
        rows = self._query(
            f"{ROWS} WHERE h.lock_key = %s OR h.key = %s ORDER BY h.since", (pg_lock_key(resource), resource)
        )
        if not rows:
            raise NoSuchLock(resource, self.shown)
        name = str(rows[0][2])
        live = [r for r in rows if r[6]]
        if not live:
            self._delete_stale([r[0] for r in rows])
            return ReleaseResult(name, "cleaned", [_record(r) for r in rows])
        holders = [_record(r) for r in live]
        if only_stale:
            raise ResourceInUse(name, holder_summary(holders))
        for pid in sorted({int(r[3]) for r in live}):
            self._terminate(name, pid, holders)
        self._query(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", ([r[0] for r in live],))
        return ReleaseResult(name, "broken", holders)

    def _terminate(self, resource: str, pid: int, holders: Sequence[dict[str, Any]]) -> None:
        """End server session ``pid`` and wait (up to :data:`TERMINATE_WAIT`) until it is gone."""
        pg = psycopg()
        link = self.link()
        try:
            if link.server_version >= 140000:  # waits for the session to end
                link.run("SELECT pg_terminate_backend(%s, %s)", (pid, int(TERMINATE_WAIT * 1000)))
            else:
                link.run("SELECT pg_terminate_backend(%s)", (pid,))
                deadline = time.monotonic() + TERMINATE_WAIT
                while link.run("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)) and time.monotonic() < deadline:
                    time.sleep(0.01)
        except pg.errors.InsufficientPrivilege:
            holder = next((h for h in holders if h.get("backend_pid") == pid), {})
            found = link.run("SELECT usename FROM pg_stat_activity WHERE pid = %s", (pid,))
            raise LockServerRefused(
                resource, holder, str(found[0][0] if found else ""), link.role, self.shown
            ) from None
        except Lost as exc:
            raise LockServerUnavailable(self.shown, str(exc)) from None
        except pg.Error as exc:
            raise LockServerUnavailable(self.shown, self._describe(exc)) from None


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    """The holder record of a row: what the holder wrote, and the server's view of it (backend pid, mode)."""
    try:
        found = json.loads(row[4])
    except (TypeError, ValueError, RecursionError):
        found = None
    record: dict[str, Any] = found if isinstance(found, dict) else {"damaged": str(row[4])[:200]}
    record["backend_pid"] = row[3]
    record.setdefault("resource", row[2])
    return record
