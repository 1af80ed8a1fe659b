"""The station page (``litmus page``): a live operator view in the browser, with Start and Stop.

- :mod:`.hub`: :class:`~.hub.PageHub`, the station's state, its run and the open pages (no web framework);
- :mod:`.runner`: the run the Start button starts (one per station) and Stop ends;
- :mod:`.sessions`: the station's sessions in the data dir: the newest, the last units, the day's yield;
- :mod:`.app`: the Starlette application (server-sent events), imported only to serve;
- ``static/``: the page itself, served from the package.

Needs the ``[page]`` extra (Starlette and uvicorn): :func:`serve` says so when it is missing.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import TYPE_CHECKING, Any

from pytest_litmus.errors import PageUnavailable

if TYPE_CHECKING:
    from pytest_litmus.page.hub import PageHub

__all__ = ["is_loopback", "listen", "require", "serve"]


def require() -> None:
    """Raise :class:`PageUnavailable` unless Starlette and uvicorn are installed."""
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            raise PageUnavailable(module) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def serve(hub: PageHub, sock: socket.socket, *, announce: Any = None) -> None:
    """Serve the page on ``sock`` until interrupted (SIGINT, SIGTERM); ``announce(url)`` once it listens."""
    require()
    import uvicorn

    from pytest_litmus.page.app import create_app

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    hub.url = f"http://{shown}:{port}/"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(hub), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
    )
    if announce is not None:
        announce(hub.url)
    server.run(sockets=[sock])
    sys.stdout.flush()
