"""Shipping sessions to the fleet store: idempotent, by COPY, one transaction per session.

The event file stays the source of truth. A session is read with the usual
readers (:func:`~pytest_litmus.events.read_session`,
:func:`~pytest_litmus.records.build_record`) and stored in one transaction:

- its row in ``litmus.sessions``, under a transaction-level advisory lock on
  the session, so two shippers of one session take turns;
- the raw events keyed by ``(session, seq)``: only those the store does not
  hold yet are copied, so a session shipped twice is stored once and a session
  shipped while it ran (or before it crashed) is completed by the next ship;
- its units, attempts, measurements and attachments, derived again from the
  whole file (deleted and copied: they follow the record, not the last ship).

A transaction that does not commit (server gone, process killed) leaves the
store as it was. Afterwards ``<data_dir>/fleet/shipped/<session>.json`` notes the
store and the bytes shipped: a session is *pending* while that note is missing,
names another store, or the event file has grown since.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_litmus.atomicfile import make_dirs, write_json
from pytest_litmus.dburl import redact_url
from pytest_litmus.errors import FleetNotMigrated, FleetUnavailable
from pytest_litmus.events import EVENTS_FILE, SessionLog, read_session
from pytest_litmus.fleet._db import _psycopg, connect, reason_of
from pytest_litmus.fleet.schema import check_version
from pytest_litmus.records import SessionRecord, build_record
from pytest_litmus.sessionfind import session_dirs

__all__ = ["Pending", "ShipReport", "Shipped", "pending", "ship", "ship_session"]

STATE_DIR = Path("fleet") / "shipped"
#: The first key of the two-key advisory lock a shipper holds on a session (the second: its id's hash).
_SHIP_LOCK = 0x6C74
_INT64 = 1 << 63
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Shipped:
    """One session shipped: the events and measurements it added (0 and ``already``: it was there)."""

    session: str
    events: int
    measurements: int
    #: Bytes of the event file shipped.
    size: int = 0
    already: bool = False


@dataclass(frozen=True)
class Pending:
    """A session not (fully) in the store, and why."""

    session: str
    path: Path
    size: int
    why: str


@dataclass
class ShipReport:
    """What :func:`ship` did: sessions shipped, those still pending, and why it stopped (None: it did not)."""

    shipped: list[Shipped] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    #: Sessions that could not be stored (their data), by session: the reason.
    failed: dict[str, str] = field(default_factory=dict)
    error: FleetUnavailable | FleetNotMigrated | None = None


# --------------------------------------------------------------------------- shipped / pending state


def _note_path(data_dir: Path, session: str) -> Path:
    return Path(data_dir) / STATE_DIR / f"{session}.json"


def _note(data_dir: Path, session: str) -> dict[str, Any]:
    try:
        note = json.loads(_note_path(data_dir, session).read_bytes())
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def _write_note(data_dir: Path, session: str, store: str, size: int) -> None:
    try:
        make_dirs(Path(data_dir) / STATE_DIR)
        write_json(_note_path(data_dir, session), {"store": store, "size": size, "at": time.time()})
    except OSError:  # not noted: the next ship finds it stored already (one quick query)
        pass


def pending(data_dir: Path, store: str | None = None, only: Iterable[str] | None = None) -> list[Pending]:
    """Sessions of ``data_dir`` not fully in the store ``store`` (None: whatever store they went to), oldest first."""
    wanted = set(only) if only is not None else None
    found: list[tuple[float, Pending]] = []
    for directory in session_dirs(Path(data_dir)):
        if wanted is not None and directory.name not in wanted:
            continue
        try:
            st = (directory / EVENTS_FILE).stat()
        except OSError:
            continue
        note = _note(data_dir, directory.name)
        if not note:
            why = "never shipped"
        elif store is not None and note.get("store") != store:
            why = "shipped to another store"
        elif note.get("size") != st.st_size:
            why = f"grew since shipped ({note.get('size')} -> {st.st_size} bytes)"
        else:
            continue
        found.append((st.st_mtime, Pending(directory.name, directory / EVENTS_FILE, st.st_size, why)))
    return [p for _, p in sorted(found, key=lambda f: (f[0], f[1].session))]


# --------------------------------------------------------------------------- rows


def _time(value: float | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _seq(value: Any) -> int | None:
    return value if type(value) is int and -_INT64 <= value < _INT64 else None


def _clean(value: Any) -> Any:
    """``value`` storable as jsonb/text: NUL and lone surrogates as U+FFFD, NaN and infinities as strings."""
    if isinstance(value, str):
        return _BAD_TEXT.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _json(value: Any) -> str:
    """``value`` as jsonb text (cleaned only when it must be)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        if "\\u0000" not in text and _BAD_TEXT.search(text) is None:
            return text
    except ValueError:
        pass
    return json.dumps(_clean(value), ensure_ascii=False, allow_nan=False)


def _dump(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event as jsonb text, and the event itself (cleaned when it held what PostgreSQL refuses)."""
    try:
        text = json.dumps(event, ensure_ascii=False, allow_nan=False)
        if "\\u0000" not in text and _BAD_TEXT.search(text) is None:
            return text, event
    except ValueError:  # NaN or an infinity
        pass
    try:
        event = _clean(event)
        return json.dumps(event, ensure_ascii=False, allow_nan=False), event
    except (ValueError, RecursionError):
        stub = {k: _clean(event.get(k)) for k in ("seq", "ts", "session", "type")}
        return json.dumps({**stub, "not_stored": "nested too deeply"}, allow_nan=False), stub


def _copy_text(data: bytes) -> bytes:
    """``data`` as a field of COPY's text format."""
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def _lines(data: bytes) -> list[bytes]:
    """The complete, non-blank lines of an event file, as :func:`~pytest_litmus.events.read_session` takes them."""
    lines = data.split(b"\n")
    lines.pop()
    return [line for line in lines if line.strip()]


#: What a line may hold that jsonb refuses (NUL, a surrogate escape, NaN/Infinity): such lines are re-dumped.
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|NaN|Infinity")


def _prepare(log: SessionLog, data: bytes | None) -> list[tuple[int, bytes]]:
    """Each event with an integer seq (the first of each seq) as ``(seq, jsonb text)``; cleans ``log``.

    ``data`` is the file's bytes as read: when its lines are exactly the events
    read, a line is stored as written, else (and for lines jsonb refuses) the
    event is dumped again, cleaned.
    """
    lines = _lines(data) if data is not None and log.bad_lines == 0 else None
    if lines is not None and len(lines) != len(log.events):  # the file changed between the reads
        lines = None
    rows: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    for i, event in enumerate(log.events):
        raw = lines[i] if lines is not None else None
        if raw is None or _SUSPECT.search(raw) is not None:
            text, clean = _dump(event)
            raw = text.encode()
            if clean is not event:
                log.events[i] = event = clean
        seq = _seq(event.get("seq"))
        if seq is None or seq in seen:
            continue
        seen.add(seq)
        rows.append((seq, raw))
    return rows


def _value(value: Any) -> tuple[float | None, str | None]:
    """A measurement value as ``(double, None)`` when a finite number, else ``(None, jsonb text)``."""
    if type(value) in (int, float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number, None
    return None, _json(value)


def _copy(cur: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    with cur.copy(f"COPY litmus.{table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _session_row(record: SessionRecord, size: int, events: int) -> tuple[Any, ...]:
    started = _json(dict(record.started)) if record.started else None
    return (
        record.id,
        record.station,
        record.host,
        record.user,
        _time(record.start),
        _time(record.end),
        record.outcome,
        record.mock,
        record.dut,
        record.limits_file,
        record.limits_sha256,
        events,
        min(record.lost, _INT64 - 1),
        min(record.bad_lines, _INT64 - 1),
        record.torn,
        size,
        started,
    )


_SESSION_COLUMNS = (
    'session, station, host, "user", started, ended, outcome, mock, dut, limits_file, limits_sha256, events, lost,'
    " bad_lines, torn, file_size, started_event"
)
_UPSERT = (
    f"INSERT INTO litmus.sessions ({_SESSION_COLUMNS}) VALUES ({', '.join(['%s'] * 17)})"
    " ON CONFLICT (session) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in (c.strip() for c in _SESSION_COLUMNS.split(",")) if c != "session")
    + ", shipped_at = now()"
)


# --------------------------------------------------------------------------- shipping


def ship_session(conn: Any, path: Path) -> Shipped:
    """Store the session of event file ``path`` (idempotent); psycopg errors propagate."""
    data = path.read_bytes()
    log = read_session(path)
    raw = _prepare(log, data)
    record = build_record(log)
    record = replace(record, id=_BAD_TEXT.sub("\ufffd", record.id))
    sid = record.id
    size = len(data)
    with conn.transaction(), conn.cursor() as cur:
        # one shipper of a session at a time (two-key advisory locks: a space of their own)
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_SHIP_LOCK, sid))
        row = cur.execute("SELECT file_size FROM litmus.sessions WHERE session = %s", (sid,)).fetchone()
        if row is not None and row[0] == size:
            return Shipped(sid, 0, 0, size, already=True)
        cur.execute(_UPSERT, _session_row(record, size, len(raw)))
        known: set[int] = set()
        if row is not None:
            known = {r[0] for r in cur.execute("SELECT seq FROM litmus.events WHERE session = %s", (sid,))}
            for table in ("units", "attempts", "measurements", "attachments"):
                cur.execute(f"DELETE FROM litmus.{table} WHERE session = %s", (sid,))
        new = [r for r in raw if r[0] not in known]
        head = _copy_text(sid.encode()) + b"\t"
        with cur.copy("COPY litmus.events (session, seq, event) FROM STDIN") as copy:
            for start in range(0, len(new), 1000):
                copy.write(
                    b"".join(head + b"%d\t%b\n" % (seq, _copy_text(line)) for seq, line in new[start : start + 1000])
                )
        measured = _store_record(cur, record)
        if known:
            cur.execute("UPDATE litmus.sessions SET events = %s WHERE session = %s", (len(known) + len(new), sid))
    return Shipped(sid, len(new), measured, size)


def _store_record(cur: Any, record: SessionRecord) -> int:
    """Copy the record's units, attempts, measurements and attachments; returns the measurement count."""
    sid = record.id
    units, attempts, measurements, attachments = [], [], [], []
    seen_m: set[int] = set()
    seen_a: set[int] = set()
    for index, unit in enumerate(record.units):
        units.append((sid, index, unit.dut, unit.part, _seq(unit.unit_attempt), unit.slot, unit.verdict))
        for test in unit.tests:
            for a in test.attempts:
                if _seq(a.attempt) is None:  # beyond bigint: not storable (the file keeps it)
                    continue
                attempts.append(
                    (sid, index, test.nodeid, a.attempt, a is test.final, a.outcome, a.duration, a.message,
                     _time(a.start), _time(a.end))
                )  # fmt: skip
        for m in unit.all_measurements():
            seq = _seq(m.seq)
            if seq is None or seq in seen_m or _seq(m.attempt) is None:
                continue
            seen_m.add(seq)
            value, value_json = _value(m.value)
            limits = _json(m.limits) if m.limits is not None else None
            measurements.append(
                (sid, seq, index, m.dut, m.nodeid, m.attempt, m.name, value, value_json, m.units, m.low, m.high,
                 limits, m.outcome, m.marginal, m.superseded, _time(m.ts), m.where)
            )  # fmt: skip
        found = [*unit.attachments, *(x for t in unit.tests for a in t.attempts for x in a.attachments)]
        for x in found:
            seq = _seq(x.seq)
            if seq is None or seq in seen_a or _seq(x.attempt) is None:
                continue
            seen_a.add(seq)
            attachments.append(
                (sid, seq, index, x.dut, x.nodeid, x.attempt, x.name, x.path, x.mime, _seq(x.size), x.sha256, x.series,
                 x.superseded, _time(x.ts))
            )  # fmt: skip
    _copy(cur, "units", "session, unit, dut, part, unit_attempt, slot, verdict", units)
    _copy(
        cur, "attempts", "session, unit, nodeid, attempt, final, outcome, duration, message, started, ended", attempts
    )
    _copy(
        cur,
        "measurements",
        "session, seq, unit, dut, nodeid, attempt, name, value, value_json, units, low, high, limits, outcome,"
        ' marginal, superseded, ts, "where"',
        measurements,
    )
    _copy(
        cur,
        "attachments",
        "session, seq, unit, dut, nodeid, attempt, name, path, mime, size, sha256, series, superseded, ts",
        attachments,
    )
    return len(measurements)


def _is_connection_error(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


def ship(
    url: str,
    data_dir: Path,
    *,
    only: Iterable[str] | None = None,
    first: str | None = None,
    deadline: float | None = None,
    conn: Any = None,
) -> ShipReport:
    """Ship the pending sessions of ``data_dir`` (only those in ``only``, when given), ``first`` first, then oldest first.

    Stops at the first connection problem (the report's ``error``; the rest
    stays pending) or when ``time.monotonic()`` passes ``deadline``. A session
    whose data the store refuses is reported in ``failed`` and the others go on.
    Never raises for the store; the data dir's own errors (unreadable) do.
    """
    report = ShipReport()
    shown = redact_url(url)
    own = conn is None
    store = None
    psycopg = _psycopg()
    try:
        if own:
            conn = connect(url)
        store = check_version(conn, shown)
    except (FleetUnavailable, FleetNotMigrated) as exc:
        report.error = exc
    except psycopg.Error as exc:
        report.error = FleetUnavailable(shown, reason_of(exc, url))
    try:
        todo = pending(data_dir, store, only)
        todo.sort(key=lambda p: p.session != first)  # stable: the rest stays oldest first
        if store is None:
            report.pending = todo
            todo = []
        for item in todo:
            if deadline is not None and time.monotonic() > deadline:
                report.pending.append(item)
                continue
            if report.error is not None or store is None:
                report.pending.append(item)
                continue
            try:
                done = ship_session(conn, item.path)
            except OSError as exc:  # the event file went, or cannot be read: not the store's fault
                report.failed[item.session] = f"{item.path}: {exc.strerror or exc}"
                report.pending.append(item)
                continue
            except psycopg.Error as exc:
                report.pending.append(item)
                if _is_connection_error(exc) or conn.closed:
                    report.error = FleetUnavailable(shown, reason_of(exc, url))
                else:
                    report.failed[item.session] = reason_of(exc, url)
                continue
            _write_note(data_dir, item.session, store, done.size)
            report.shipped.append(done)
    finally:
        if own and conn is not None:
            conn.close()
    if report.error is not None and isinstance(report.error, FleetUnavailable):
        report.error = FleetUnavailable(shown, report.error.reason, pending=len(report.pending))
    return report
