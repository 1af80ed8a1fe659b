"""Database URLs: which settings values are PostgreSQL URLs, and keeping their secrets out of every line.

``redact_url`` shows a URL with its password as ``***`` (``postgresql://lab:***@db/litmus``) for
events, messages and CLI output; ``url_secrets`` and ``scrub_secrets`` take a URL's secrets out of
a driver's message that may quote it.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

#: What ``locks:`` / ``LITMUS_LOCKS`` accept.
LOCKS_EXPECTED = "host, or a postgresql:// URL (PostgreSQL advisory locks)"
#: What ``fleet:`` / ``LITMUS_FLEET`` accept.
FLEET_EXPECTED = "a postgresql:// URL (the fleet store)"


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return text.strip().startswith(("postgresql://", "postgres://")) and len(text.strip()) > len("postgres://")


#: URL query parameters that carry a secret.
SECRET_PARAMS = ("password", "sslpassword")


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) shown as ``***``, for messages and logs."""
    try:
        parts = urlsplit(url.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        query = parts.query
        if any(k in SECRET_PARAMS for k, _ in parse_qsl(query, keep_blank_values=True)):
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k in SECRET_PARAMS else v) for k, v in pairs], safe="*")
        return SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment).geturl()
    except ValueError:
        return "a postgresql:// URL that cannot be parsed"


def url_secrets(url: str) -> list[str]:
    """The secrets ``url`` carries (its password, ``password=`` / ``sslpassword=`` values), to scrub from messages."""
    found = []
    try:
        parts = urlsplit(url.strip())
        if parts.password:
            found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query) if k in SECRET_PARAMS and v]
    except ValueError:
        pass
    return found


def scrub_secrets(text: str, secrets: list[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***`` (a driver's message may quote the URL)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def check_locks(text: str) -> str | None:
    """None if ``text`` is a lock backend ``locks:`` accepts, else what is wrong with it."""
    value = text.strip()
    return None if value == "host" or is_postgres_url(value) else LOCKS_EXPECTED
