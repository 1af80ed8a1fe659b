"""Per-session event files (JSON Lines): writing, fast encoding, reading back.

A session writes ``<data_dir>/sessions/<session_id>/events.jsonl``: one JSON
object a line with ``seq``, ``ts``, ``session``, ``type`` and the type's fields.
:mod:`pytest_litmus.eventfile` appends the lines (one ``write`` each; what a
full or failing disk does to them is described there). Every string in an event
longer than :data:`MAX_TEXT` is cut, with a marker saying how long it was.
Readers skip a torn line, and :func:`seq_gaps` finds events missing from a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from json.encoder import encode_basestring
from pathlib import Path
from time import time_ns
from typing import TYPE_CHECKING, Any

from pytest_litmus.eventfile import LineWriter, SeqGaps, WriteFault, seq_gaps
from pytest_litmus.eventfile import parse_line as parse_line  # where the readers have always found it
from pytest_litmus.eventtypes import EventType

if TYPE_CHECKING:
    from pytest_litmus.hooks import LitmusPluginManager

SESSIONS_DIR = "sessions"
EVENTS_FILE = "events.jsonl"
#: Strings longer than this (waveforms, binary blocks, runaway names) are cut, in every event.
MAX_TEXT = 4096
#: Sequences longer than this are cut to their first items in call events.
MAX_ITEMS = 64
#: Distinct single-string arguments (SCPI commands) whose JSON a recorder keeps.
ARGS_CACHE_SIZE = 1024

#: ``(caller, nodeid)`` of the call this thread runs for another process, set by the
#: instrument server around each remote call: ``caller`` is the client's pid, host and
#: user; the call is attributed to the client's ``nodeid`` (None: no test), not the holder's.
REMOTE_CALLER: ContextVar[tuple[dict[str, Any], str | None] | None] = ContextVar("litmus_remote_caller", default=None)


def _event_encoder() -> Callable[[Any], str]:
    """Compact JSON, non-ASCII kept, NaN refused: ``json``'s C encoder, built once.

    ``JSONEncoder.encode`` builds a new C encoder object on every call (~1 us of
    the ~4 us an event line costs); this keeps one and calls it directly.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator in this Python
        return encoder.encode
    # markers None: no circular-reference check (a shared markers dict keeps stale entries after an
    # error); a self-referencing value recurses until RecursionError, which encode_line handles.
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


_encode_event = _event_encoder()


def _remote_tail(remote: tuple[dict[str, Any], str | None]) -> str:
    """The end of a remote call's line: the client's nodeid, then its identity."""
    caller, nodeid = remote
    return f'{encode_value(nodeid)},"caller":{_encode_event(json_safe(caller))}'


def session_dir(data_dir: Path, session_id: str) -> Path:
    return data_dir / SESSIONS_DIR / session_id


def events_path(data_dir: Path, session_id: str) -> Path:
    return session_dir(data_dir, session_id) / EVENTS_FILE


# --------------------------------------------------------------------------- values


def json_safe(value: Any, _depth: int = 0) -> Any:
    """``value`` as something JSON can hold, cut to a bounded size.

    Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``;
    bytes their ``repr``; unknown objects their ``repr``.
    """
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if kind is str:
        return cut_text(value)
    if isinstance(value, str):  # a str subclass (an EventType, a StrEnum): its text, not its repr
        return cut_text(str.__str__(value))
    if isinstance(value, (int, float)):
        return json_safe(float(value) if isinstance(value, float) else int(value), _depth)
    if _depth < 4 and isinstance(value, (list, tuple)):
        items = [json_safe(v, _depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"...[{len(value)} items]")
        return items
    if _depth < 4 and isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return json_safe(repr(value), _depth)


#: ``"type":"Measurement",`` by event type, for the lines built by a fast path.
_TYPE_HEADS: dict[str, str] = {}


def encode_value(value: Any) -> str:
    """JSON text for one value; the common scalar cases skip the general encoder."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value) if len(value) <= MAX_TEXT else encode_basestring(json_safe(value))
    if kind is float:
        return repr(value) if math.isfinite(value) else f'"{value!r}"'
    if kind is int:
        return repr(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _encode_event(json_safe(value))


def encode_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1:
        only = args[0]
        if type(only) is str and len(only) <= MAX_TEXT:
            return f"[{encode_basestring(only)}]"
        return f"[{encode_value(only)}]"
    if not args:
        return "[]"
    return "[" + ",".join(encode_value(a) for a in args[:MAX_ITEMS]) + "]"


def cut_text(text: str) -> str:
    """``text``, or its first :data:`MAX_TEXT` characters and ``...[N chars]`` (a cut text stays as it is)."""
    if len(text) <= MAX_TEXT or (len(text) <= MAX_TEXT + 32 and _CUT_MARK.fullmatch(text, MAX_TEXT)):
        return text
    return f"{text[:MAX_TEXT]}...[{len(text)} chars]"


_CUT_MARK = re.compile(r"\.\.\.\[\d+ chars\]")


def cut_strings(value: Any) -> Any:
    """``value`` with every string in it (keys too) cut to :data:`MAX_TEXT`; nothing else changed."""
    kind = type(value)
    if kind is str:
        return cut_text(value)
    if kind is dict:
        return {cut_text(k) if type(k) is str else k: cut_strings(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [cut_strings(v) for v in value]
    return value


def encode_line(event: dict[str, Any]) -> bytes:
    """One event as a JSON line (bytes, newline-terminated), every string in it cut to :data:`MAX_TEXT`."""
    try:
        text = _encode_event(event)
    except (TypeError, ValueError, RecursionError):  # RecursionError: a value that contains itself
        text = _encode_event(json_safe(event))
    if len(text) > MAX_TEXT:  # only then can a string in it be too long: most lines never pay for the walk
        text = _encode_event(cut_strings(json.loads(text)))
    return (text + "\n").encode()


# --------------------------------------------------------------------------- writing


class EventFile(LineWriter):
    """The default ``litmus_event`` implementation: appends each event to the session file.

    A file system error never reaches whoever recorded the event: see
    :class:`~pytest_litmus.eventfile.LineWriter` for what is kept, retried and counted.
    """

    def litmus_event(self, event: dict[str, Any]) -> None:
        self.write(encode_line(event))


class Recorder:
    """Numbers events, stamps them, and hands them to the writer and subscribers.

    One lock orders everything: lines appear in the file in ``seq`` order, and a
    subscriber sees events in that order too.
    """

    def __init__(self, session: str, writer: EventFile, hooks: LitmusPluginManager) -> None:
        self.session = session
        self.writer = writer
        self.hooks = hooks
        self._nodeid: str | None = None
        self._nodeid_json = "null"
        self._seq = 0
        self._lock = threading.RLock()
        self._session_json = encode_basestring(session)
        self._caller = hooks.hook.litmus_event
        self._write = writer.write
        self._seen_generation = -1
        self._alone = False
        self._str_args: dict[str, str] = {}
        writer.session, writer.next_seq = session, self._next_seq
        hooks.register(writer, name="litmus-eventlog")

    def _next_seq(self) -> int:
        """A ``seq`` for an event the writer adds (``EventsLost``); called under the lock, by the writer."""
        self._seq += 1
        return self._seq

    @property
    def nodeid(self) -> str | None:
        """The test that events are attributed to (None outside tests)."""
        return self._nodeid

    @nodeid.setter
    def nodeid(self, value: str | None) -> None:
        with self._lock:
            self._nodeid = value
            self._nodeid_json = encode_value(value)

    def _remember_args(self, arg: str) -> str:
        """The JSON of ``[arg]``, kept for the next call with the same command string."""
        if len(self._str_args) >= ARGS_CACHE_SIZE:
            self._str_args.clear()
        encoded = self._str_args[arg] = encode_args((arg,))
        return encoded

    def _writer_only(self) -> bool:
        if self.hooks.generation != self._seen_generation:
            impls = self._caller.get_hookimpls()
            self._alone = len(impls) == 1 and impls[0].plugin is self.writer
            self._seen_generation = self.hooks.generation
        return self._alone

    def emit(self, type: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Record one event; returns it as subscribers saw it.

        Inside a remote call (see :data:`REMOTE_CALLER`) the event names its
        ``caller``, and a ``nodeid`` field is the client's test, not this process's.
        """
        remote = REMOTE_CALLER.get()
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "ts": time.time(), "session": self.session, "type": type, **fields}
            if remote is not None:
                if "nodeid" in event:
                    event["nodeid"] = remote[1]
                event["caller"] = remote[0]
            if self._alone if self.hooks.generation == self._seen_generation else self._writer_only():
                try:
                    self._write(encode_line(event))
                except Exception as exc:  # noqa: BLE001 - as the hook's isolation would
                    _writer_failed(exc, event)
            else:
                self._caller(event=event)
            return event

    def emit_encoded(self, type: str, body: str, fields: Callable[..., dict[str, Any]], *args: Any) -> bool:
        """Record an event whose fields the caller has encoded: ``body`` is ``"k":v,...`` (no braces).

        The line is written as is while the file writer is the only subscriber
        and no remote call is running (the ``Measurement`` fast path); otherwise
        the event is built from ``fields(*args)`` and goes through :meth:`emit`.
        Returns whether the encoded line was used.
        """
        if REMOTE_CALLER.get() is not None:
            self.emit(type, fields(*args))
            return False
        with self._lock:
            if not (self._alone if self.hooks.generation == self._seen_generation else self._writer_only()):
                self.emit(type, fields(*args))
                return False
            self._seq = seq = self._seq + 1
            head = _TYPE_HEADS.get(type)
            if head is None:
                head = _TYPE_HEADS[type] = f'"type":{encode_basestring(type)},'
            self._write_built(seq, type, head + body)
            return True

    def _write_built(self, seq: int, type: str, rest: str) -> None:
        """Write a line built by a fast path: ``seq``, ``ts`` (an exact decimal exponent), ``session``, ``rest``."""
        data = f'{{"seq":{seq},"ts":{time_ns() // 1000}e-6,"session":{self._session_json},{rest}}}\n'.encode()
        try:
            self._write(data)
        except Exception as exc:  # noqa: BLE001 - as the hook's isolation would
            _writer_failed(exc, {"seq": seq, "type": type})

    def instrument_call(
        self,
        role: str,
        method: str,
        head: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        error: str | None,
        duration_ns: int,
    ) -> None:
        """Record an ``InstrumentCall``; ``head`` is ``role`` and ``method`` pre-encoded.

        This is the hot path (every instrument call), so when the file writer is
        the only subscriber the line is built directly, without an event dict,
        and ``ts`` and ``duration`` are written as exact decimal exponents of
        integer clocks (``1795242060665412e-6``: valid JSON numbers, read back
        as floats), which is a third of the cost of formatting floats.
        """
        remote = REMOTE_CALLER.get()
        lock = self._lock
        lock.acquire()
        try:
            self._seq = seq = self._seq + 1
            if self._alone if self.hooks.generation == self._seen_generation else self._writer_only():
                if kwargs or error is not None:
                    middle = (f'"kwargs":{_encode_event(json_safe(kwargs))},' if kwargs else "") + (
                        f'"error":{encode_value(error)},' if error is not None else f'"result":{encode_value(result)},'
                    )
                elif type(result) is str and len(result) <= MAX_TEXT:
                    middle = f'"result":{encode_basestring(result)},'
                else:
                    middle = f'"result":{encode_value(result)},'
                if len(args) == 1 and type(args[0]) is str:  # one SCPI string, usually one of a few
                    encoded = self._str_args.get(args[0])
                    if encoded is None:
                        encoded = self._remember_args(args[0])
                else:
                    encoded = encode_args(args)
                self._write_built(
                    seq,
                    EventType.INSTRUMENT_CALL,
                    f'{_CALL_TYPE},{head},"args":{encoded},{middle}"duration":{duration_ns}e-9,'
                    f'"nodeid":{self._nodeid_json if remote is None else _remote_tail(remote)}',
                )
                return
            event: dict[str, Any] = {
                "seq": seq,
                "ts": time.time(),
                "session": self.session,
                "type": EventType.INSTRUMENT_CALL,
                "role": role,
                "method": method,
                "args": json_safe(list(args)),
            }
            if kwargs:
                event["kwargs"] = json_safe(kwargs)
            if error is not None:
                event["error"] = error
            else:
                event["result"] = json_safe(result)
            event["duration"] = duration_ns / 1e9
            if remote is None:
                event["nodeid"] = self._nodeid
            else:
                event["nodeid"], event["caller"] = remote[1], remote[0]
            self._caller(event=event)
        finally:
            lock.release()

    def flush(self) -> bool:
        """Try once more to write the events a write fault left waiting; True if none wait."""
        with self._lock:
            return self.writer.retry()

    def unrecorded(self, nodeid: str | None) -> list[str]:
        """The types of ``nodeid``'s ``Measurement``/``TestOutcome`` events not on disk (waiting or lost)."""
        with self._lock:
            return self.writer.unrecorded(nodeid)

    def fault(self) -> WriteFault | None:
        """Events not on disk (waiting or lost) and why; None when all are."""
        with self._lock:
            return self.writer.fault()

    def close(self) -> None:
        with self._lock:
            self.writer.close()
            if self.hooks.is_registered(self.writer):
                self.hooks.unregister(self.writer)


#: The ``type`` member of every ``InstrumentCall`` line, encoded once.
_CALL_TYPE = f'"type":"{EventType.INSTRUMENT_CALL.value}"'


def _writer_failed(exc: Exception, event: dict[str, Any]) -> None:
    """The fast paths' version of the hook's isolation: a writer's bug is a warning, never the caller's error.

    File system errors never get here (the writer keeps and counts those lines);
    under ``-W error`` the warning would raise, so it is dropped then.
    """
    import warnings

    from pytest_litmus.hooks import SubscriberWarning

    try:
        warnings.warn(
            SubscriberWarning(
                f"litmus_event subscriber 'litmus-eventlog' raised {type(exc).__name__}: {exc} "
                f"(event seq {event.get('seq')}, type {event.get('type')})"
            ),
            stacklevel=3,
        )
    except Exception:  # noqa: BLE001 - the recorded call's result matters more than this warning
        pass


def call_head(role: str, method: str) -> str:
    """The constant part of an ``InstrumentCall`` line for one role and method."""
    return f'"role":{encode_basestring(role)},"method":{encode_basestring(method)}'


# --------------------------------------------------------------------------- reading


class SessionLog:
    """What a session's event file holds."""

    __slots__ = ("bad_lines", "events", "path", "torn")

    def __init__(
        self, path: Path, events: list[dict[str, Any]] | None = None, torn: bool = False, bad_lines: int = 0
    ) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = [] if events is None else events
        #: The last line was cut off (the writer died mid-line); it is not in ``events``.
        self.torn = torn
        #: Lines other than the last that were not valid JSON objects (skipped).
        self.bad_lines = bad_lines

    @property
    def complete(self) -> bool:
        """Whether the session ended (a ``SessionEnded`` event is present)."""
        return any(e.get("type") == EventType.SESSION_ENDED for e in reversed(self.events))

    @property
    def started(self) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("type") == EventType.SESSION_STARTED), None)

    @property
    def ended(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("type") == EventType.SESSION_ENDED), None)

    def gaps(self) -> SeqGaps:
        """The events missing from the file: those an ``EventsLost`` accounts for, and the rest."""
        return seq_gaps(self.events)


def read_session(path: Path | str) -> SessionLog:
    """Read an event file; a torn last line is skipped and flagged, never raised."""
    path = Path(path)
    log = SessionLog(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line the writer never finished
    if tail.strip():
        log.torn = True
    for raw in lines:
        if not raw.strip():
            continue
        event = parse_line(raw)
        if event is None:
            log.bad_lines += 1
        else:
            log.events.append(event)
    return log


def read_events(path: Path | str) -> list[dict[str, Any]]:
    """Every complete event in an event file, in file order."""
    return read_session(path).events


def filter_events(
    events: Iterable[dict[str, Any]], event_type: str | Iterable[str] | None = None, role: str | None = None
) -> Iterator[dict[str, Any]]:
    """Events of ``event_type`` (one name or several) and ``role``, both optional."""
    types = {event_type} if isinstance(event_type, str) else set(event_type) if event_type is not None else None
    for event in events:
        if types is not None and event.get("type") not in types:
            continue
        if role is not None and event.get("role") != role:
            continue
        yield event
