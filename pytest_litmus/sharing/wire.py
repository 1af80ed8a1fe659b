"""The wire between an instrument server and its clients: key handshake, framing, identity, deadlines.

``multiprocessing.connection`` frames messages (a 4-byte big-endian length,
then the payload) and runs a mutual HMAC challenge with the server's random
key; requests and replies are pickles, so only a peer that proved it has the
key is ever unpickled. Before that proof no frame over 256 bytes is read
(``recv_bytes(256)`` in the challenge); after it, none over
:data:`MAX_MESSAGE`.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

from pytest_litmus.processes import identity

__all__ = [
    "CALLER_KEYS",
    "CALL_MARGIN",
    "HANDSHAKE_TIMEOUT",
    "MAX_GREETING",
    "MAX_HANDSHAKES",
    "MAX_MESSAGE",
    "VISA_DEFAULT_TIMEOUT",
    "HandshakeFailed",
    "Request",
    "dumps",
    "handshake",
    "identity",
    "loads",
    "settle",
]

#: Seconds a peer gets for each read of the key handshake and greeting before it is dropped.
HANDSHAKE_TIMEOUT = 5.0
#: Handshakes a server runs at once; a new connection beyond this drops the oldest unauthenticated one.
MAX_HANDSHAKES = 16
#: Largest greeting (``hello`` and its answer) read, in bytes.
MAX_GREETING = 64 * 1024
#: Largest request or reply read from an authenticated peer, in bytes.
MAX_MESSAGE = 1 << 30
#: Seconds a client waits beyond the holder's own wait (the instrument's timeout, an SRQ wait, a lock wait).
CALL_MARGIN = 5.0
#: pyvisa's timeout when a role sets no ``timeout_ms``, in seconds.
VISA_DEFAULT_TIMEOUT = 2.0
#: What a server keeps of a client's identity (``worker``: the pytest-xdist worker id, if any).
CALLER_KEYS = ("pid", "host", "user", "worker")

#: ``(op, role, name, args, kwargs, nodeid)``: one request from a client.
Request = tuple[str, str, str, tuple[Any, ...], dict[str, Any], "str | None"]

loads = pickle.loads


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


class HandshakeFailed(ConnectionError):
    """The peer did not complete the key handshake; the message says how (never a raw traceback)."""


def _set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound blocking reads on the socket (0: unbounded), without making it non-blocking."""
    from pytest_litmus._posix import set_recv_timeout  # the server and its clients need POSIX (README)

    set_recv_timeout(sock, seconds)


def handshake(
    sock: socket.socket, key: bytes, *, server: bool, proved: Callable[[], bool] | None = None
) -> Connection[Any, Any]:
    """Wrap ``sock`` in a Connection and run the mutual HMAC challenge both ways.

    Every read is bounded by :data:`HANDSHAKE_TIMEOUT`, which stays set for
    the greeting: call :func:`settle` after it. ``proved()`` (server side) is
    called once the peer has proved the key; returning False abandons the
    handshake. Every failure, junk included, is :class:`HandshakeFailed`.
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _set_recv_timeout(sock, HANDSHAKE_TIMEOUT)
    conn: Connection[Any, Any] = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, key)
            if proved is not None and not proved():
                raise HandshakeFailed("dropped: too many connections were waiting for the key handshake")
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
    except HandshakeFailed:
        conn.close()
        raise
    except AuthenticationError as exc:
        conn.close()
        raise HandshakeFailed(f"wrong key ({exc})") from None
    except EOFError:
        conn.close()
        raise HandshakeFailed("closed the connection during the key handshake") from None
    except (BlockingIOError, TimeoutError):
        conn.close()
        raise HandshakeFailed(f"no key handshake within {HANDSHAKE_TIMEOUT:g} s") from None
    except OSError as exc:
        conn.close()
        raise HandshakeFailed(f"key handshake failed ({exc.strerror or exc})") from None
    except Exception as exc:  # junk: multiprocessing asserts on a malformed challenge
        conn.close()
        raise HandshakeFailed(f"sent something that is not the key handshake ({type(exc).__name__})") from None
    return conn


def settle(sock: socket.socket) -> None:
    """End the handshake's read bound on ``sock`` (calls have deadlines of their own)."""
    _set_recv_timeout(sock, 0)
