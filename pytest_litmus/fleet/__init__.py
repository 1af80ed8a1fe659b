"""The fleet store: every station's sessions in one PostgreSQL database (docs/fleet.md).

psycopg (``pytest-litmus[fleet]``) is imported only when the store is used.
:func:`~pytest_litmus.fleet.shipping.ship` sends a data dir's pending sessions,
:func:`~pytest_litmus.fleet.schema.migrate` creates and upgrades the schema,
:mod:`~pytest_litmus.fleet.queries` answers yield, unit and trend questions.
"""

from __future__ import annotations

from pytest_litmus.fleet import shipping
from pytest_litmus.fleet._db import connect
from pytest_litmus.fleet.schema import VERSION, migrate
from pytest_litmus.fleet.shipping import Pending, Shipped, ShipReport, pending, ship, ship_session

__all__ = [
    "VERSION",
    "Pending",
    "ShipReport",
    "Shipped",
    "connect",
    "migrate",
    "pending",
    "ship",
    "ship_session",
    "shipping",
]
