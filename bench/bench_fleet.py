"""Shipping sessions to the fleet store: measurement rows per second, and a 10,000-event session.

    python bench/bench_fleet.py [--url postgresql://...] [--events 10000] [--measurements 100000] [--rounds 3]

Without ``--url`` it starts a throw-away PostgreSQL cluster (tests/pgserver.py: fsync off, as
the tests run it) and migrates a fresh database. Writes session files the way the writer does
(SessionStarted, TestStarted / Measurement x 20 / TestOutcome per test, limits on every
measurement, SessionEnded), then times, best of ``--rounds`` (each round into an empty store):

- ``ship 10k-event session``: one session of ``--events`` events, end to end (read, record,
  COPY events + measurements + units + attempts, commit, shipped note). Target (issue 13): < 1 s.
- ``measurement rows/s``: sessions totalling ``--measurements`` measurements (500 a unit, as
  the capacity estimate in docs/fleet.md assumes), shipped by one ``ship()``. Target: >= 50,000 rows/s.
- ``re-ship (nothing new)``: the same data dir shipped again (every session already stored).

Also prints the store's size per measurement (table + indexes + its raw event), which
docs/fleet.md's capacity section extrapolates from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from pytest_litmus.fleet import connect, migrate, ship, shipping  # noqa: E402

T0 = 1_767_225_600.0


def write_session(data_dir: Path, session: str, events: int, per_test: int = 20, station: str = "cell-7") -> int:
    """A session of about ``events`` events; returns its measurement count."""
    lines: list[str] = []
    seq = 0

    def add(type_: str, **fields: object) -> None:
        nonlocal seq
        seq += 1
        lines.append(json.dumps({"seq": seq, "ts": T0 + seq * 1e-3, "session": session, "type": type_, **fields}))

    add("SessionStarted", station=station, host="bench", user="op", mock=False, dut=f"SN-{session}", unit_attempt=1)
    add("UnitStarted", dut=f"SN-{session}", unit_attempt=1, slot="main")
    limits = {"low": 3.2, "high": 3.4, "low_inclusive": True, "high_inclusive": True, "units": "V", "source": "file"}
    measured = 0
    t = 0
    while seq < events - 2 - per_test:
        nodeid = f"tests/test_board.py::test_rail[{t}]"
        add("TestStarted", nodeid=nodeid, dut=f"SN-{session}", attempt=1)
        for i in range(per_test):
            add(
                "Measurement", name=f"rail_{i}", value=3.3 + (i % 7) * 1e-3, units="V", low=3.2, high=3.4,
                limits=limits, outcome="passed", nodeid=nodeid, dut=f"SN-{session}", attempt=1,
                where="tests/test_board.py:12",
            )  # fmt: skip
            measured += 1
        add("TestOutcome", nodeid=nodeid, outcome="passed", duration=0.1, dut=f"SN-{session}", attempt=1)
        t += 1
    add("SessionEnded", outcome="passed", counts={})
    path = data_dir / "sessions" / session / "events.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return measured


def fresh(url: str) -> None:
    with connect(url) as conn:
        conn.execute("DROP SCHEMA IF EXISTS litmus CASCADE")
        migrate(conn, url)


SPENT: dict[str, float] = {}


def _timing(name: str, func: Any) -> Any:
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            SPENT[name] = SPENT.get(name, 0.0) + time.perf_counter() - start

    return timed_call


# the readers every litmus command uses (events.read_session, records.build_record), and the measurements' COPY
shipping.read_session = _timing("read", shipping.read_session)
shipping.build_record = _timing("record", shipping.build_record)
_plain_copy = shipping._copy


def _copy(cur: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    _timing(f"copy {table}", _plain_copy)(cur, table, columns, rows)


shipping._copy = _copy


def timed(url: str, data_dir: Path, rounds: int, reset: bool = True) -> tuple[float, dict[str, float]]:
    best = float("inf")
    split: dict[str, float] = {}
    for _ in range(rounds):
        if reset:
            fresh(url)
            shutil.rmtree(data_dir / "fleet", ignore_errors=True)
        SPENT.clear()
        start = time.perf_counter()
        report = ship(url, data_dir)
        took = time.perf_counter() - start
        assert report.error is None and not report.failed, report
        if took < best:
            best, split = took, dict(SPENT)
    return best, split


def _split(split: dict[str, float], total: float) -> str:
    parts = {k: split.get(k, 0.0) for k in ("read", "record", "copy measurements")}
    rest = total - sum(parts.values())
    return ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in parts.items()) + f", the rest {rest * 1e3:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--measurements", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        from pgserver import Cluster

        cluster = Cluster()
        url = cluster.database("bench_fleet")
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        one = root / "one"
        measured = write_session(one, "s10k", args.events)
        seconds, split = timed(url, one, args.rounds)
        print(f"ship {args.events}-event session ({measured} measurements): {seconds * 1e3:.0f} ms  (target < 1000 ms)")
        print(f"  {_split(split, seconds)}")

        many = root / "many"
        total = 0
        n = 0
        while total < args.measurements:
            total += write_session(many, f"u{n:05d}", 500 + 500 // 20 * 2 + 3, station=f"cell-{n % 4}")
            n += 1
        seconds, split = timed(url, many, args.rounds)
        print(f"ship {n} sessions, {total} measurements end to end: {seconds:.2f} s = {total / seconds:,.0f} rows/s")
        print(f"  {_split(split, seconds)}")
        copy = split["copy measurements"]
        print(f"  measurement rows into the server (COPY): {total / copy:,.0f} rows/s  (target >= 50,000 rows/s)")
        again, _ = timed(url, many, args.rounds, reset=False)
        print(f"re-ship {n} sessions (all stored already): {again * 1e3:.0f} ms")
        with connect(url) as conn:
            sizes = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'litmus' AND c.relkind = 'r'"
            ).fetchone()
            rows = conn.execute("SELECT count(*) FROM litmus.measurements").fetchone()
        size = float(sizes[0])
        print(f"store size: {size / 1e6:.1f} MB for {rows[0]} measurements = {size / rows[0]:.0f} bytes each")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
