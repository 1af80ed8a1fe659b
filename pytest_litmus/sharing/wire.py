"""The wire between an instrument server and its clients: key handshake, framing, identity.

``multiprocessing.connection`` frames messages and runs a mutual HMAC challenge
with the server's random key; requests and replies are pickles, so only a peer
that proved it has the key is ever unpickled.
"""

from __future__ import annotations

import os
import pickle
import socket
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

from pytest_litmus.processes import identity

__all__ = ["CALLER_KEYS", "HANDSHAKE_TIMEOUT", "Request", "dumps", "handshake", "identity", "loads"]

#: Seconds a peer gets to complete the key handshake before it is dropped.
HANDSHAKE_TIMEOUT = 5.0
#: What a server keeps of a client's identity (``worker``: the pytest-xdist worker id, if any).
CALLER_KEYS = ("pid", "host", "user", "worker")

#: ``(op, role, name, args, kwargs, nodeid)``: one request from a client.
Request = tuple[str, str, str, tuple[Any, ...], dict[str, Any], "str | None"]

loads = pickle.loads


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound blocking reads on the socket (0: unbounded), without making it non-blocking."""
    from pytest_litmus._posix import set_recv_timeout  # the server and its clients need POSIX (README)

    set_recv_timeout(sock, seconds)


def handshake(sock: socket.socket, key: bytes, *, server: bool) -> Connection[Any, Any]:
    """Wrap ``sock`` in a Connection and run the mutual HMAC challenge both ways."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _set_recv_timeout(sock, HANDSHAKE_TIMEOUT)
    conn: Connection[Any, Any] = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, key)
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
    except BaseException:
        conn.close()
        raise
    _set_recv_timeout(sock, 0)
    return conn
