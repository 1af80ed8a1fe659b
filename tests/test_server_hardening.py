"""The instrument server against hostile or broken peers: real sockets on 127.0.0.1, real processes.

Connection files are trusted only when they are the user's; unauthenticated
sockets cannot starve keyed clients; a frozen holder gives a deadline, not a
hang; junk in either direction is ``ServerUnavailable`` in the client and an
``InstrumentClientRefused`` event in the server, never a raw traceback.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import pytest
from serverhelpers import STATION_FILE, read_json_line, spawn, start_session

from pytest_litmus.errors import RemoteCallError
from pytest_litmus.follow import iter_follow
from pytest_litmus.sharing import (
    ENV_ADDRESS,
    ENV_FILE,
    InstrumentServer,
    RemoteStation,
    ServerInfo,
    ServerUnavailable,
    connect_remote,
    find_server,
    find_server_info,
    list_servers,
    serve,
    wire,
)
from pytest_litmus.sharing.files import ConnectionFileWarning, trust_problem

IDN = "Keysight Technologies,34465A,MY-SIM-0001,A.03.01"
#: Bounds hangs only: every wait below ends long before this on a healthy run.
HANG = 60.0

posix_only = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file ownership and modes")


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Any]:
    station = start_session(tmp_path / "holder")
    yield station
    station.stop()


@pytest.fixture
def server(station: Any) -> Iterator[InstrumentServer]:
    with serve(station) as server:
        yield server


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """Exceptions that escaped any thread during the test (the server must let none escape)."""
    seen: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def refusals(station: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ``InstrumentClientRefused`` events, waiting for them to be written."""
    follower = iter_follow(station.event_log, event_type="InstrumentClientRefused", stop_at_end=False, timeout=HANG)
    return list(islice(follower, count))


def plant(directory: Path, info: ServerInfo, *, mode: int = 0o600, dir_mode: int = 0o700) -> Path:
    """A connection file for ``info`` written by hand in ``directory``, with the given modes."""
    path = info.write(directory)
    os.chmod(path, mode)
    os.chmod(directory, dir_mode)
    return path


# ---------------------------------------------------------------- 1. which files are trusted


@posix_only
@pytest.mark.parametrize(
    ("mode", "dir_mode", "why"),
    [
        (0o666, 0o700, "mode 0666: writable by group and others"),
        (0o602, 0o700, "mode 0602: writable by others"),
        (0o620, 0o700, "mode 0620: writable by group"),
        (0o600, 0o777, "mode 0777: writable by group and others"),
    ],
)
def test_a_file_others_can_write_is_refused_and_never_read(
    tmp_path: Path, station: Any, monkeypatch: pytest.MonkeyPatch, mode: int, dir_mode: int, why: str
) -> None:
    # A foreign "server" that would answer a client with a pickle of its choosing.
    foreign = socket.create_server(("127.0.0.1", 0))
    foreign.setblocking(False)
    info = ServerInfo(
        host="127.0.0.1", port=foreign.getsockname()[1], pid=os.getpid(), session="planted", station="cell-7",
        roles=["dmm"], key="00" * 32, hostname=socket.gethostname(),
    )  # fmt: skip
    path = plant(tmp_path / "planted" / "servers", info, mode=mode, dir_mode=dir_mode)
    assert why in (trust_problem(path) or "")

    with pytest.warns(ConnectionFileWarning, match=why):
        assert list_servers(tmp_path / "planted") == []
    with pytest.raises(ServerUnavailable, match="refused as untrusted") as scanned:
        find_server(info.address, tmp_path / "planted")
    assert str(path) in str(scanned.value) and why in str(scanned.value)

    monkeypatch.setenv(ENV_ADDRESS, info.address)
    monkeypatch.setenv(ENV_FILE, str(path))
    with pytest.raises(ServerUnavailable) as named:
        connect_remote(data_dir=tmp_path / "planted")
    assert f"{ENV_FILE} {path} refused" in str(named.value) and why in str(named.value)
    with pytest.raises(ServerUnavailable, match="refused"):
        ServerInfo.load(path)  # also the path xdist workers take

    with pytest.raises(BlockingIOError):
        foreign.accept()  # nobody ever connected to it
    foreign.close()


@posix_only
def test_a_file_owned_by_someone_else_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = ServerInfo(host="127.0.0.1", port=1, pid=os.getpid(), session="s", station="cell-7", roles=[], key="00" * 32)
    path = plant(tmp_path / "servers", info)
    if os.getuid() == 0:
        os.chown(path, 1234, -1)
        owner, me = 1234, 0
    else:  # not root: pretend to be someone else, so the file's real owner is a stranger
        owner, me = os.getuid(), os.getuid() + 1
        monkeypatch.setattr(os, "getuid", lambda: me)
    monkeypatch.setenv(ENV_FILE, str(path))
    with pytest.raises(ServerUnavailable, match=f"owned by uid {owner}, not you \\(uid {me}\\)"):
        find_server_info(info.address, tmp_path)


@posix_only
def test_trusted_files_are_read(tmp_path: Path, station: Any, server: InstrumentServer) -> None:
    assert trust_problem(server.path) is None
    sticky = tmp_path / "sticky"  # like /tmp: others may add files, but not replace ours
    sticky.mkdir()
    copy = plant(sticky, server.info, dir_mode=0o1777)
    assert trust_problem(copy) is None
    link = tmp_path / "link.json"
    link.symlink_to(server.path)
    assert trust_problem(link) is None  # the target is judged
    with connect_remote(server.address, data_dir=station.data_dir) as remote:
        assert remote.instrument("dmm").query("*IDN?").strip() == IDN


# ---------------------------------------------------------------- 2. idle sockets cannot starve keyed clients


def test_a_hundred_idle_sockets_do_not_lock_a_keyed_client_out(
    station: Any, server: InstrumentServer, thread_errors: list[BaseException | None]
) -> None:
    idle = [socket.create_connection((server.info.host, server.info.port), timeout=HANG) for _ in range(100)]
    try:
        with connect_remote(server.address, data_dir=station.data_dir) as remote:
            assert remote.instrument("dmm").query("*IDN?").strip() == IDN
        dropped = refusals(station, 100 - server.max_handshakes)
        assert all("dropped before the key handshake" in e["reason"] for e in dropped)
    finally:
        for sock in idle:
            sock.close()
    assert thread_errors == []


def test_a_keyed_client_over_the_client_limit_is_told_so(station: Any) -> None:
    with serve(station, max_clients=1) as server:
        first = connect_remote(server.address, data_dir=station.data_dir)
        with pytest.raises(ServerUnavailable, match=r"refused the connection: at its client limit \(1 clients\)"):
            connect_remote(server.address, data_dir=station.data_dir)
        first.close()
        assert refusals(station, 1)[0]["reason"] == "at the client limit (1 clients)"


# ---------------------------------------------------------------- 3. deadlines


@pytest.fixture
def frozen_holder(tmp_path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A holder process serving a station whose dmm has a 200 ms VISA timeout."""
    stations = tmp_path / "stations"
    shutil.copytree(STATION_FILE.parent, stations)
    fast = stations / "cell-7.yaml"
    fast.write_text(fast.read_text().replace("timeout_ms: 10000", "timeout_ms: 200"))
    holder = spawn("holder", str(tmp_path / "data"), str(fast))
    info = read_json_line(holder)
    yield holder, info
    os.kill(holder.pid, signal.SIGCONT)
    holder.kill()
    holder.wait(timeout=HANG)


def freeze(holder: Any) -> None:
    """SIGSTOP the holder and return once it has stopped (its parent sees that in ``waitpid``)."""
    os.kill(holder.pid, signal.SIGSTOP)
    _, status = os.waitpid(holder.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)


def test_a_frozen_holder_gives_a_deadline_not_a_hang(
    frozen_holder: tuple[Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, info = frozen_holder
    monkeypatch.setattr(wire, "HANDSHAKE_TIMEOUT", 1.0)  # this client's reads of a handshake (5 s in earnest)
    remote = RemoteStation(ServerInfo.load(Path(info["file"])), call_margin=2.0)
    dmm = remote.instrument("dmm")
    assert remote.timeouts["dmm"] == 0.2  # the role's timeout_ms
    assert dmm.query("*IDN?").strip() == IDN
    freeze(holder)
    with pytest.raises(ServerUnavailable, match=r"no answer to dmm\.query within 2\.2 s.*may or may not have run"):
        dmm.query("*IDN?")
    assert remote._connection() is None  # dropped: the next call starts afresh
    with pytest.raises(ServerUnavailable, match=r"key handshake failed: no key handshake within 1 s"):
        dmm.query("*IDN?")  # the kernel accepts the connection; the frozen holder never answers
    os.kill(holder.pid, signal.SIGCONT)
    assert dmm.query("*IDN?").strip() == IDN  # reconnected
    freeze(holder)
    with (
        pytest.raises(ServerUnavailable, match=r"no answer to dmm\.lock within 2\.1 s"),
        dmm.lock_context(timeout=0.1),
    ):
        pass
    os.kill(holder.pid, signal.SIGCONT)
    assert dmm.query("*IDN?").strip() == IDN  # reconnected
    remote.close()


def test_waits_the_caller_asked_for_set_the_deadline(station: Any, server: InstrumentServer) -> None:
    sent: list[float | None] = []
    with connect_remote(server.address, data_dir=station.data_dir) as remote:
        remote.call_margin = 3.0
        dmm = remote.instrument("dmm")
        assert remote.timeouts == {"dmm": 10.0}
        original = remote._conn

        def spy() -> tuple[Connection[Any, Any], Callable[[float | None], bool]]:
            conn, ready = original()

            def recording(seconds: float | None) -> bool:
                sent.append(seconds)
                return ready(seconds)

            return conn, recording

        remote._conn = spy  # type: ignore[method-assign]
        dmm.query("*IDN?")
        with dmm.lock_context(timeout=1.5):
            pass
        with dmm.lock_context():
            pass
        waiter = remote.srq("dmm")
        dmm.write("INIT")
        dmm.write("*OPC")
        waiter.wait(timeout=20)
        waiter.close()
        with pytest.raises(TypeError):
            dmm.query("*IDN?", timeout=30)  # no such keyword in this driver, but it sets the deadline
        with pytest.raises(TypeError):
            dmm.query("*IDN?", timeout=None)  # None may mean "the default": the role's timeout holds
    assert sent[-2:] == [33.0, 13.0]
    assert sent[0] == 13.0  # the role's 10 s timeout + margin
    assert sent[1] == 4.5  # lock_context(1.5)
    assert None in sent  # lock_context(): the caller asked to wait for ever
    assert 23.0 in sent  # srq wait(20)


# ---------------------------------------------------------------- 4. junk towards the server

rng = random.Random(10)
JUNK_TO_SERVER: dict[str, bytes] = {
    "random bytes": bytes(rng.randrange(256) for _ in range(300)),
    "random short": bytes(rng.randrange(256) for _ in range(3)),
    "truncated frame": struct.pack("!i", 100) + b"x" * 10,
    "wrong length": struct.pack("!i", 3) + b"\x80" * 300,
    "huge declared length": struct.pack("!i", 0x7FFFFFFF) + b"x" * 64,
    "huge 8-byte length": struct.pack("!i", -1) + struct.pack("!Q", 1 << 62) + b"x" * 64,
    "negative length": struct.pack("!i", -7) + b"x" * 64,
    "a pickle, no key": struct.pack("!i", 40) + pickle.dumps(("call", "dmm", "query", ("*RST",), {}, None))[:40],
    "nothing": b"",
}


def test_junk_before_the_key_is_refused_without_a_traceback(
    station: Any, server: InstrumentServer, thread_errors: list[BaseException | None]
) -> None:
    for junk in JUNK_TO_SERVER.values():
        with (
            socket.create_connection((server.info.host, server.info.port), timeout=HANG) as sock,
            contextlib.suppress(OSError),  # it may hang up (a reset) before reading all our junk
        ):
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):  # the server answers with its challenge, then hangs up
                pass
    refused = refusals(station, len(JUNK_TO_SERVER))
    assert len(refused) == len(JUNK_TO_SERVER)
    assert all("Traceback" not in e["reason"] for e in refused)
    assert station.events("InstrumentCall") == []
    with connect_remote(server.address, data_dir=station.data_dir) as remote:
        assert remote.instrument("dmm").query("*IDN?").strip() == IDN
    assert thread_errors == []


def keyed(server: InstrumentServer) -> Connection[Any, Any]:
    """A raw connection that has passed the key handshake (a keyed but buggy peer)."""
    conn: Connection[Any, Any] = Client((server.info.host, server.info.port), authkey=bytes.fromhex(server.info.key))
    return conn


def test_a_keyed_peer_that_sends_junk_gets_errors_not_a_crash(
    station: Any, server: InstrumentServer, thread_errors: list[BaseException | None]
) -> None:
    for greeting in (b"\x80\x05junk", pickle.dumps(42), pickle.dumps(("hello", "me"))):
        bad = keyed(server)
        bad.send_bytes(greeting)
        with pytest.raises(EOFError):
            bad.recv_bytes()
        bad.close()
    assert all("greeting" in e["reason"] for e in refusals(station, 3))

    conn = keyed(server)
    conn.send(("hello", {"pid": 3.5, "user": ["no"], "host": "h"}))
    assert conn.recv()[0] == "ok"
    requests: list[bytes] = [
        b"not a pickle",
        pickle.dumps(42),
        pickle.dumps(("call", "dmm")),
        pickle.dumps((1, "dmm", "query", ("*IDN?",), {}, None)),
        pickle.dumps(("call", "dmm", "query", ["*IDN?"], {}, None)),
        pickle.dumps(("call", "dmm", "query", ("*IDN?",), [], None)),
        pickle.dumps(("call", "dmm", "query", ("*IDN?",), {}, 7)),
        pickle.dumps(("launch", "dmm", "query", (), {}, None)),
        pickle.dumps(("call", "dmm", "query", (), {1: 2}, None)),
        pickle.dumps(("lock", "dmm", "lock", ("soon",), {}, None)),
        pickle.dumps(("srq_wait", "dmm", "wait", ([],), {}, None)),
    ]
    for request in requests:
        conn.send_bytes(request)
        status, error = conn.recv()
        assert status == "raise" and isinstance(error, Exception), request
    conn.send(("call", "dmm", "query", ("*IDN?",), {}, None))
    status, value = conn.recv()
    assert (status, value.strip()) == ("ok", IDN)  # the same connection still works
    conn.send_bytes(b"")  # an empty frame
    assert conn.recv()[0] == "raise"
    # A frame it will not read: 2**62 bytes declared.
    conn._send(struct.pack("!i", -1) + struct.pack("!Q", 1 << 62))  # type: ignore[attr-defined]
    with pytest.raises(EOFError):
        conn.recv_bytes()
    conn.close()
    follower = iter_follow(
        station.event_log, event_type="InstrumentClientDisconnected", stop_at_end=False, timeout=HANG
    )
    gone = list(islice(follower, 1))
    assert "bad message length" in gone[0]["reason"]
    assert gone[0]["caller"] == {"host": "h"}  # what was not a str or int is not kept
    assert thread_errors == []


# ---------------------------------------------------------------- 4. junk towards the client


def fake_server(reply: Callable[[socket.socket], None]) -> tuple[ServerInfo, threading.Thread]:
    """A one-connection server on 127.0.0.1 that runs ``reply(sock)`` and hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(HANG)

    def run() -> None:
        with listener:
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(HANG)
                reply(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    info = ServerInfo(
        host="127.0.0.1", port=port, pid=os.getpid(), session="fake", station="cell-7", roles=["dmm"], key="11" * 32
    )
    return info, thread


@pytest.mark.parametrize("junk", list(JUNK_TO_SERVER.values()), ids=list(JUNK_TO_SERVER))
def test_junk_from_a_keyless_server_is_server_unavailable(junk: bytes) -> None:
    info, thread = fake_server(lambda sock: sock.sendall(junk))
    with pytest.raises(ServerUnavailable, match="key handshake failed"):
        RemoteStation(info)
    thread.join(HANG)


def keyed_fake_server(script: Callable[[Connection[Any, Any]], None]) -> tuple[ServerInfo, threading.Thread]:
    """A one-connection server that knows the key, then runs ``script(conn)`` and hangs up."""
    key = bytes.fromhex("22" * 32)
    listener = Listener(("127.0.0.1", 0), authkey=key)

    def run() -> None:
        with listener, listener.accept() as conn:
            script(conn)
            conn.poll(HANG)  # until the client hangs up

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    host, port = listener.address
    info = ServerInfo(
        host=host, port=port, pid=os.getpid(), session="fake", station="cell-7", roles=["dmm"], key=key.hex()
    )
    return info, thread


def greet_then(reply: bytes | None) -> Callable[[Connection[Any, Any]], None]:
    def script(conn: Connection[Any, Any]) -> None:
        conn.recv_bytes()
        conn.send(("ok", {"station": "cell-7"}))
        conn.recv_bytes()
        if reply is not None:
            conn.send_bytes(reply)
        else:
            conn._send(struct.pack("!i", 0x7FFFFFFF))  # type: ignore[attr-defined]

    return script


@pytest.mark.parametrize(
    "reply",
    [
        b"\x80\x05 not a pickle",
        pickle.dumps(42),
        pickle.dumps(("ok",)),
        pickle.dumps(("raise", "not an exception")),
        pickle.dumps(("maybe", 1)),
        b"",
        None,  # a frame of 2 GiB declared, never sent
    ],
)
def test_junk_replies_from_a_keyed_server_are_server_unavailable(reply: bytes | None) -> None:
    info, thread = keyed_fake_server(greet_then(reply))
    remote = RemoteStation(info)
    with pytest.raises(ServerUnavailable, match=r"dmm\.query"):
        remote.request("call", "dmm", "query", ("*IDN?",))
    assert remote._connection() is None  # dropped: the stream is out of step
    remote.close()
    thread.join(HANG)


@pytest.mark.parametrize("greeting", [b"\x80junk", pickle.dumps(42), pickle.dumps(("ok", "not a dict"))])
def test_a_junk_greeting_is_server_unavailable(greeting: bytes) -> None:
    def script(conn: Connection[Any, Any]) -> None:
        conn.recv_bytes()
        conn.send_bytes(greeting)

    info, thread = keyed_fake_server(script)
    with pytest.raises(ServerUnavailable, match="greeting"):
        RemoteStation(info)
    thread.join(HANG)


def test_a_wrong_key_is_still_refused_plainly(station: Any, server: InstrumentServer) -> None:
    with pytest.raises(ServerUnavailable, match="wrong key"):
        RemoteStation(replace(server.info, key="00" * 32))
    assert "wrong key" in refusals(station, 1)[0]["reason"]


def test_remote_call_errors_still_pickle() -> None:
    error = pickle.loads(pickle.dumps(RemoteCallError("?", "?", "ValueError", "malformed request: int")))
    assert isinstance(error, RemoteCallError) and error.message == "malformed request: int"
