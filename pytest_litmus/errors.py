"""One error hierarchy for the whole product.

Every error is a :class:`LitmusError` and also the builtin it is a kind of, so
``except LookupError`` keeps working for callers who do not know this package.
Errors carry structured fields (``ResourceInUse.holder``) and survive pickling,
so they cross process boundaries (instrument server, xdist) unchanged.

Why this module is over 500 lines: it is the hierarchy, one small class per error, kept in
one place on purpose so that every error a user can catch is found (and pickled, tested) here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AccessDenied",
    "AttachmentError",
    "AttachmentMissing",
    "AttachmentNotWritten",
    "AttachmentTypeError",
    "CorruptFile",
    "EventsNotWritten",
    "ExtraMissing",
    "InstrumentError",
    "InvalidName",
    "LimitConflict",
    "LimitError",
    "LimitNotListed",
    "LimitTypeError",
    "LitmusError",
    "LockConnectionLost",
    "LockLost",
    "LockModeConflict",
    "LockServerRefused",
    "LockServerUnavailable",
    "NoSuchLock",
    "NotSimulated",
    "PageUnavailable",
    "PromptTimeout",
    "PromptUnavailable",
    "ReleaseRefused",
    "RemoteCallError",
    "ReportUnavailable",
    "ResourceInUse",
    "RunInProgress",
    "SerialRefused",
    "ServerUnavailable",
    "SessionNotFound",
    "SrqTimeout",
    "StationConfigError",
    "StationNotFound",
    "SyncError",
    "SyncTimeout",
    "UnitIndexError",
    "UnitNotFound",
    "UnknownRole",
]


def _rebuild(cls: type[LitmusError], args: tuple[Any, ...], state: dict[str, Any]) -> LitmusError:
    # The builtin that lays the instance out (OSError for a TimeoutError or ConnectionError
    # subclass) must allocate it: the first __new__ along the MRO may be another builtin's.
    base: Any = cls
    while base.__module__ != "builtins":
        base = base.__base__
    err: LitmusError = base.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class LitmusError(Exception):
    """Base class of every error raised by pytest-litmus."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword fields in __init__; rebuild from the message and
        # the instance dict instead, so no subclass needs its own pickling code.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class StationNotFound(LitmusError, LookupError):
    """No station file for ``station`` in any of the ``searched`` directories."""

    def __init__(
        self, station: str, searched: Sequence[Path], available: Sequence[str], *, source: str | None = None
    ) -> None:
        self.station = station
        self.searched = [Path(p) for p in searched]
        self.available = list(available)
        #: Where the station id came from (``LITMUS_STATION``, ``--station``), if known.
        self.source = source
        where = ", ".join(str(p) for p in self.searched) or "(no stations directory found)"
        have = ", ".join(self.available) if self.available else "none"
        origin = f" (from {source})" if source else ""
        super().__init__(f"station {station!r}{origin} not found in {where}; available stations: {have}")


class StationConfigError(LitmusError, ValueError):
    """A station file, ``litmus.yaml`` or setting has a bad value.

    ``file`` is the file (or the option / environment variable) the value came
    from, ``key`` the dotted key path, ``expected`` what would have been valid,
    ``got`` the value found (shown as its repr), or ``found`` a description of
    what was found (shown as written: ``a directory``).
    """

    def __init__(
        self,
        file: str | Path | None,
        key: str,
        expected: str,
        got: Any = None,
        *,
        has_got: bool = True,
        found: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.expected = expected
        self.got = got if found is None else found
        where = f"{self.file}: " if self.file else ""
        tail = f", got {found}" if found is not None else f", got {got!r}" if has_got else ""
        super().__init__(f"{where}{key}: expected {expected}{tail}")


class LimitError(LitmusError, ValueError):
    """A measurement's limits (or its value) cannot be judged: ``name`` is the measurement,
    ``problem`` what is wrong and ``got`` the value given."""

    def __init__(self, name: str, problem: str, got: Any = None) -> None:
        self.name = name
        self.problem = problem
        self.got = got
        shown = repr(got)
        super().__init__(f"measurement {name!r}: {problem}, got {shown if len(shown) <= 80 else shown[:77] + '...'}")


class LimitTypeError(LimitError, TypeError):
    """A limit or a judged value of the wrong type (not a real number)."""


class AttachmentError(LitmusError, ValueError):
    """An attachment refused before anything was written: ``name`` is the attachment,
    ``problem`` what is wrong and ``got`` the value (or path) given."""

    def __init__(self, name: str, problem: str, got: Any = None) -> None:
        self.name = name
        self.problem = problem
        self.got = got
        shown = repr(got)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"attachment {name[:80]!r}: {problem}, got {shown}")


class AttachmentTypeError(AttachmentError, TypeError):
    """An attachment value of a type that cannot be attached."""


class AttachmentMissing(AttachmentError, FileNotFoundError):
    """The path given to attach does not exist."""


class AttachmentNotWritten(LitmusError, OSError):
    """An attachment could not be written (full disk, I/O error, read-only): nothing was recorded.

    ``name`` is the attachment, ``path`` the file it was to be, ``reason`` the file system's error.
    """

    def __init__(self, name: str, path: str | os.PathLike[str], reason: str) -> None:
        self.name = name
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"attachment {name[:80]!r} could not be written: cannot write {self.path}: {reason}")


class ExtraMissing(LitmusError, ImportError):
    """A feature needs an optional extra that is not installed: ``extra`` (``fleet``), ``missing`` (the module)."""

    def __init__(self, extra: str, missing: str, feature: str) -> None:
        self.extra = extra
        self.missing = missing
        self.feature = feature
        super().__init__(
            f"{feature} needs pytest-litmus[{extra}] ({missing} is not installed): pip install 'pytest-litmus[{extra}]'"
        )


class ReportUnavailable(ExtraMissing):
    """An HTML report or plot was asked for without its plotting library: ``missing`` is the module."""

    def __init__(self, missing: str) -> None:
        super().__init__("report", missing, "an HTML report or plot")


class LimitNotListed(LimitError, LookupError):
    """A measurement that the session's limits file ``file`` does not list (and it says ``unlisted: error``)."""

    def __init__(self, name: str, file: str | Path) -> None:
        self.name = name
        self.file = str(file)
        self.problem = "not listed in the limits file"
        self.got = None
        Exception.__init__(
            self,
            f"measurement {name!r} is not listed in the limits file {self.file}: add it there "
            "(or set 'unlisted: open' in that file to judge unlisted names by their inline limits)",
        )


class LimitConflict(LimitError):
    """Inline limits (or units) given to ``measure`` that contradict the limits file ``file``."""

    def __init__(self, name: str, file: str | Path, problem: str) -> None:
        self.name = name
        self.file = str(file)
        self.problem = problem
        self.got = None
        Exception.__init__(
            self,
            f"measurement {name!r}: {problem} (limits file {self.file}); "
            "drop the inline value to use the file's, or change the file",
        )


class CorruptFile(LitmusError, ValueError):
    """A file litmus reads (an event file, a holder record) is damaged or not what it should be.

    ``path`` is the file, ``problem`` what is wrong, ``line`` the first bad line
    of a JSON Lines file (None for the whole file) and ``bad_lines`` how many
    lines were skipped because of such damage.
    """

    def __init__(
        self, path: str | os.PathLike[str], problem: str, *, line: int | None = None, bad_lines: int = 0
    ) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        self.line = line
        self.bad_lines = bad_lines
        where = f"{self.path}: line {line}" if line is not None else self.path
        skipped = f" ({bad_lines} bad line{'s' if bad_lines != 1 else ''} skipped)" if bad_lines else ""
        super().__init__(f"{where}: {problem}{skipped}")


class UnknownRole(LitmusError, LookupError):
    """A role that the station file does not define."""

    def __init__(self, role: str, station: str, roles: Sequence[str], file: str | Path | None = None) -> None:
        self.role = role
        self.station = station
        self.roles = list(roles)
        self.file = str(file) if file is not None else None
        src = f" ({self.file})" if self.file else ""
        super().__init__(
            f"station {station!r}{src} has no role {role!r}; its roles are: {', '.join(self.roles) or 'none'}"
        )


class ResourceInUse(LitmusError, RuntimeError):
    """The resource is locked by someone else; ``holder`` says who."""

    def __init__(self, resource: str, holder: Mapping[str, Any] | None, *, waited: float = 0.0) -> None:
        self.resource = resource
        self.holder = dict(holder) if holder else {}
        self.waited = waited
        who = describe_holder(self.holder)
        super().__init__(f"{resource} is in use by {who}")


class LockLost(LitmusError, RuntimeError):
    """The lock on a resource was taken from under its holder (forced release)."""

    def __init__(self, resource: str, role: str | None = None, by: Mapping[str, Any] | None = None) -> None:
        self.resource = resource
        self.role = role
        self.by = dict(by) if by else {}
        suffix = f"; now held by {describe_holder(self.by)}" if self.by else ""
        label = f"{role} ({resource})" if role else resource
        super().__init__(f"lock on {label} was released from under this session{suffix}")


class InstrumentError(LitmusError, RuntimeError):
    """The instrument reported errors (drained from its ``SYST:ERR?`` queue)."""

    def __init__(self, resource: str, errors: Sequence[tuple[int, str]], role: str | None = None) -> None:
        self.resource = resource
        self.errors = [(int(code), str(msg)) for code, msg in errors]
        self.role = role
        label = f"{role} ({resource})" if role else resource
        listed = "; ".join(f"{code}, {msg}" for code, msg in self.errors)
        super().__init__(f"{label} reported {len(self.errors)} error(s): {listed}")


class NotSimulated(LitmusError, TypeError):
    """``what`` (a resource, driver or proxy) has no simulated instrument of this process behind it: ``reason``."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} is not a simulated instrument of this process: {reason}")


class SrqTimeout(LitmusError, TimeoutError):
    """No service request arrived within ``timeout`` seconds."""

    def __init__(
        self, role: str | None, resource: str, timeout: float | None, status_byte: int | None, mechanism: str = ""
    ) -> None:
        self.role = role
        self.resource = resource
        self.timeout = timeout
        self.status_byte = status_byte
        self.mechanism = mechanism
        label = f"{role} ({resource})" if role else resource
        stb = f"0x{status_byte:02x}" if status_byte is not None else "never read"
        how = f" by {mechanism}" if mechanism else ""
        super().__init__(f"no service request from {label} within {timeout} s{how}; last status byte {stb}")


def describe_holder(holder: Mapping[str, Any]) -> str:
    """One line naming a lock holder: pid, user@host, session, station/role, test, since."""
    if not holder:
        return "an unknown holder"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("user") or holder.get("host"):
        parts.append(f"{holder.get('user', '?')}@{holder.get('host', '?')}")
    if holder.get("session"):
        parts.append(f"session {holder['session']}")
    if holder.get("station") or holder.get("role"):
        parts.append(f"{holder.get('station', '?')}/{holder.get('role', '?')}")
    if holder.get("nodeid"):
        parts.append(f"test {holder['nodeid']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return ", ".join(parts)


class NoSuchLock(LitmusError, LookupError):
    """There is no lock file for ``resource`` under ``locks_dir``."""

    def __init__(self, resource: str, locks_dir: str | os.PathLike[str]) -> None:
        self.resource = resource
        self.locks_dir = str(locks_dir)
        super().__init__(f"no lock for {resource} in {self.locks_dir}")


class LockModeConflict(LitmusError, RuntimeError):
    """An owner holding a shared lock asked for the same resource exclusively (no upgrades)."""

    def __init__(self, resource: str, held: str, requested: str) -> None:
        self.resource = resource
        self.held = held
        self.requested = requested
        super().__init__(f"{resource} is held {held} by this session; release it before asking for it {requested}")


class ServerUnavailable(LitmusError, ConnectionError):
    """The instrument server at ``address`` cannot be reached, refused us, or went away."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"instrument server {address}: {reason}")


class RemoteCallError(LitmusError, RuntimeError):
    """An instrument call failed in the server with an exception that cannot cross processes."""

    def __init__(self, role: str, method: str, type_name: str, message: str) -> None:
        self.role = role
        self.method = method
        self.type_name = type_name
        self.message = message
        super().__init__(f"{role}.{method} raised {type_name} in the instrument server: {message}")


class SyncError(LitmusError, RuntimeError):
    """The barrier ``name`` is broken (a party died or timed out) or was used inconsistently."""

    def __init__(
        self, name: str, reason: str, *, generation: int | None = None, arrived: list[str] | None = None
    ) -> None:
        self.name = name
        self.reason = reason
        self.generation = generation
        self.arrived = list(arrived or [])
        who = f" (arrived: {', '.join(self.arrived)})" if self.arrived else ""
        super().__init__(f"sync {name!r}: {reason}{who}")


class SyncTimeout(SyncError, TimeoutError):
    """This party waited ``timeout`` seconds at the barrier; the others get :class:`SyncError`."""


class SessionNotFound(LitmusError, LookupError):
    """No session matches ``ref`` (or several do) in ``data_dir``."""

    def __init__(self, ref: str | None, data_dir: Path, matches: list[str] | None = None) -> None:
        self.ref = ref
        self.data_dir = data_dir
        self.matches = list(matches or [])
        where = Path(data_dir) / "sessions"  # events.SESSIONS_DIR (errors import nothing of ours)
        if ref is None:
            message = f"no sessions in {where}"
        elif self.matches:
            message = f"session {ref!r} is ambiguous in {where}: {', '.join(self.matches)}"
        else:
            message = f"no session {ref!r} in {where}"
        super().__init__(message)


class UnitNotFound(LitmusError, LookupError):
    """No unit ``dut`` in session ``session`` (``units``: those it has), or, without a session, in ``data_dir``."""

    def __init__(
        self,
        dut: str | None,
        *,
        session: str | None = None,
        units: Sequence[str | None] = (),
        data_dir: Path | None = None,
    ) -> None:
        self.dut = dut
        self.session = session
        self.units = list(units)
        self.data_dir = data_dir
        if session is not None:
            have = ", ".join("(no DUT)" if u is None else repr(u) for u in self.units) or "none"
            message = f"session {session} has no unit {dut!r}; its units: {have}"
        else:
            message = f"no session tested unit {dut!r} in {Path(data_dir or '.') / 'sessions'}"
        super().__init__(message)


#: Where the shared-station setup is described; every permission error points there.
SHARED_SETUP_DOC = "docs/locking.md, 'Several users on one station'"


class InvalidName(LitmusError, ValueError):
    """A name that is used to build a path (a lock key, a session id) is not a plain name.

    Checked before any file is touched, so ``../x`` or an absolute path cannot
    reach outside ``locks/`` or ``sessions/``. ``what`` names the argument
    (``lock key or resource``, ``session id``), ``value`` is what was given and
    ``reason`` what is wrong with it.
    """

    def __init__(self, what: str, value: str, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"bad {what} {shown!r}: {reason}")


class AccessDenied(LitmusError, PermissionError):
    """The file system refused a file operation on a shared station (another user's file or directory).

    ``path`` is the file or directory refused, ``action`` what was attempted
    (``create the lock file``), ``owner``/``group``/``mode`` describe ``path``
    (empty when it could not be examined), ``user`` is who we are and ``hint``
    says what to do (``add user ana to group litmus``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        action: str,
        *,
        owner: str = "",
        group: str = "",
        mode: str = "",
        user: str = "",
        hint: str = "",
    ) -> None:
        self.path = os.fspath(path)
        self.action = action
        self.owner = owner
        self.group = group
        self.mode = mode
        self.user = user
        self.hint = hint
        facts = ", ".join(
            f
            for f in (
                f"owner {owner}" if owner else "",
                f"group {group}" if group else "",
                f"mode {mode}" if mode else "",
            )
            if f
        )
        about = f" ({facts})" if facts else ""
        me = f" as user {user}" if user else ""
        todo = f": {hint}" if hint else ""
        super().__init__(f"cannot {action} {self.path}{about}{me}{todo}; see {SHARED_SETUP_DOC}")


class ReleaseRefused(LitmusError, PermissionError):
    """``release --force`` of a live lock held by another user: only that user or root may break it.

    ``holder`` is the live holder's record, ``holder_user`` its user and
    ``user`` who asked.
    """

    def __init__(self, resource: str, holder: Mapping[str, Any] | None, holder_user: str, user: str) -> None:
        self.resource = resource
        self.holder = dict(holder) if holder else {}
        self.holder_user = holder_user
        self.user = user
        who = describe_holder(self.holder)
        super().__init__(
            f"{resource} is held by {who}, a live process of user {holder_user}; only {holder_user} or root "
            f"may break it (you are {user}): ask {holder_user} to end it, or run the release as root"
        )


class EventsNotWritten(LitmusError, OSError):
    """Events of a session could not be written to its event file (full disk, I/O error, read-only).

    ``lost`` events are missing from ``path`` for good, ``ranges`` their ``seq``
    numbers as ``(first, last)`` pairs, ``reason`` the file system's error
    (``[Errno 28] No space left on device``). ``action`` is ``write``, or
    ``create`` when the file could not even be created (nothing was recorded).
    """

    def __init__(
        self,
        session: str,
        path: str | os.PathLike[str],
        lost: int,
        ranges: Sequence[tuple[int, int]],
        reason: str,
        *,
        action: str = "write",
    ) -> None:
        self.session = session
        self.path = os.fspath(path)
        self.lost = lost
        self.ranges = [(int(a), int(b)) for a, b in ranges]
        self.reason = reason
        self.action = action
        if action == "create":
            message = f"cannot create the event file {self.path}: {reason}"
        else:
            seqs = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.ranges)
            which = f" (seq {seqs})" if seqs else ""
            message = (
                f"{lost} event{'s' * (lost != 1)} of session {session} could not be written{which}: "
                f"cannot write {self.path}: {reason}"
            )
        super().__init__(message)


class UnitIndexError(LitmusError, OSError):
    """The unit index (``<data_dir>/units/``) could not record that this session tests a unit.

    ``path`` is the unit's index file, ``serial`` the unit, ``reason`` the file
    system's (or the index lock's) error. Without it the unit attempt number is
    unknown, so the session does not start.
    """

    def __init__(self, path: str | os.PathLike[str], serial: str, reason: str) -> None:
        self.path = os.fspath(path)
        self.serial = serial
        self.reason = reason
        super().__init__(f"cannot record unit {serial!r} in the unit index {self.path}: {reason}")


class LockServerUnavailable(LitmusError, ConnectionError):
    """The PostgreSQL lock server at ``url`` (password redacted) cannot be used: ``reason``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot use the lock server {url}: {reason}")


class LockConnectionLost(LockLost):
    """The connection holding a PostgreSQL lock ended (forced release, server restart, network): the lock went with it."""

    def __init__(self, resource: str, role: str | None, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(resource, role)
        label = f"{role} ({resource})" if role else resource
        self.args = (
            f"lock on {label} was lost: the connection to the lock server {url} ended ({reason}); "
            "`litmus locks release --force`, a server restart or the network ends it",
        )


class LockServerRefused(ReleaseRefused):
    """The lock server refused to end the session of a live holder: its role, a superuser or pg_signal_backend may."""

    def __init__(self, resource: str, holder: Mapping[str, Any] | None, holder_role: str, role: str, url: str) -> None:
        self.url = url
        super().__init__(resource, holder, holder_role, role)
        who = describe_holder(self.holder)
        self.args = (
            f"{resource} is held by {who}, connected to {url} as role {holder_role or '?'}; the server lets only "
            f"that role, a superuser or a member of pg_signal_backend end its session (you are role {role})",
        )


class PageUnavailable(ExtraMissing):
    """The station page was asked for without its web stack: ``missing`` is the module."""

    def __init__(self, missing: str) -> None:
        super().__init__("page", missing, "the station page")


class PromptUnavailable(LitmusError, RuntimeError):
    """A test asked the operator (``prompt``) with no station page attached and no terminal to ask on."""

    def __init__(self, text: str, station: str) -> None:
        self.text = text
        self.station = station
        super().__init__(
            f"cannot ask the operator {text!r}: no station page is open for station {station!r} "
            f"(litmus page --station {station}) and stdin is not a terminal"
        )


class PromptTimeout(LitmusError, TimeoutError):
    """The operator did not answer a prompt within ``timeout`` seconds (``via``: ``page`` or ``terminal``)."""

    def __init__(self, text: str, timeout: float, via: str) -> None:
        self.text = text
        self.timeout = timeout
        self.via = via
        super().__init__(f"no answer from the operator on the {via} within {timeout:g} s to {text!r}")


class SerialRefused(LitmusError, ValueError):
    """The station page refused a serial before running anything: ``expected`` says what it must be."""

    def __init__(self, serial: str, expected: str) -> None:
        self.serial = serial
        self.expected = expected
        super().__init__(f"serial {serial!r} refused: expected {expected}")


class RunInProgress(LitmusError, RuntimeError):
    """A run was started on a station whose run has not ended (one run at a time per station)."""

    def __init__(self, station: str, serial: str | None, pid: int | None) -> None:
        self.station = station
        self.serial = serial
        self.pid = pid
        who = f" (unit {serial}, pid {pid})" if serial or pid else ""
        super().__init__(f"station {station!r} is already running a test{who}: stop it or wait for its end")


class FleetUnavailable(LitmusError, ConnectionError):
    """The fleet store at ``url`` (password shown as ``***``) cannot be reached or used: ``reason`` says why.

    ``pending`` is how many sessions of the data dir are not shipped yet (None: not counted).
    """

    def __init__(self, url: str, reason: str, pending: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.pending = pending
        waiting = f"; {pending} session{'s' * (pending != 1)} pending (litmus ship sends them)" if pending else ""
        super().__init__(f"fleet store {url}: {reason}{waiting}")


class FleetNotMigrated(LitmusError, RuntimeError):
    """The fleet store at ``url`` has schema version ``found`` (0: none); this litmus needs ``needed``."""

    def __init__(self, url: str, found: int, needed: int) -> None:
        self.url = url
        self.found = found
        self.needed = needed
        if found > needed:
            what = f"has schema version {found}, newer than this litmus knows ({needed}): upgrade pytest-litmus"
        elif found == 0:
            what = "has no litmus schema: run `litmus fleet migrate` to create it"
        else:
            what = f"has schema version {found}, this litmus needs {needed}: run `litmus fleet migrate`"
        super().__init__(f"fleet store {url} {what}")


class FleetNotConfigured(LitmusError, LookupError):
    """A fleet command without a fleet store: no ``fleet:`` in litmus.yaml, no ``LITMUS_FLEET``, no ``--fleet``."""

    def __init__(self) -> None:
        super().__init__(
            "no fleet store: set `fleet: postgresql://...` in litmus.yaml, LITMUS_FLEET, or pass --fleet URL"
        )


class FleetNeedsExtra(ExtraMissing):
    """The fleet store was asked for without psycopg (``missing`` is the module)."""

    def __init__(self, missing: str = "psycopg") -> None:
        super().__init__("fleet", missing, "the fleet store")
