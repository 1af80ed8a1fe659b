"""Connecting to the fleet store: psycopg imported here only, errors named by the redacted URL."""

from __future__ import annotations

from typing import Any

from pytest_litmus.dburl import redact_url, scrub_secrets, url_secrets
from pytest_litmus.errors import FleetNeedsExtra, FleetUnavailable

__all__ = ["CONNECT_TIMEOUT", "connect", "reason_of"]

#: Seconds to wait for the server (libpq's ``connect_timeout``; it rounds up to whole seconds, at least 2).
CONNECT_TIMEOUT = 3


def _psycopg() -> Any:
    """psycopg, or :class:`FleetNeedsExtra` naming the extra to install."""
    try:
        import psycopg
    except ImportError:
        raise FleetNeedsExtra("psycopg") from None
    return psycopg


def reason_of(exc: BaseException, url: str) -> str:
    """The first line of ``exc``'s message, without the URL's password should a driver ever echo it."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return scrub_secrets(text, url_secrets(url))


def connect(url: str, *, timeout: float = CONNECT_TIMEOUT, statement_timeout_ms: int | None = None) -> Any:
    """An autocommit psycopg connection to ``url``; :class:`FleetUnavailable` (redacted URL) when it fails.

    ``statement_timeout_ms`` bounds every statement on the server (None: the server's setting).
    """
    psycopg = _psycopg()
    options = f"-c statement_timeout={int(statement_timeout_ms)}" if statement_timeout_ms else None
    kwargs: dict[str, Any] = {"connect_timeout": max(2, int(timeout)), "autocommit": True}
    kwargs["application_name"] = "litmus-fleet"
    if options:
        kwargs["options"] = options
    try:
        return psycopg.connect(url, **kwargs)
    except (psycopg.Error, OSError, ValueError) as exc:
        raise FleetUnavailable(redact_url(url), reason_of(exc, url)) from None
