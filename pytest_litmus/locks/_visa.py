"""The VISA backend: the instrument-side lock on one opened pyvisa session.

``exclusive`` is ``lock_excl``; ``shared`` is ``lock(requested_key="litmus")``,
so every litmus session shares. Where the VISA library takes no locks (pyvisa-sim,
pyvisa-py on anything but VXI-11) the call fails with ``NotImplementedError`` or
``VisaIOError(VI_ERROR_NSUP_OPER)``: :meth:`VisaBackend.acquire` then raises
:class:`~pytest_litmus.locks.LockUnsupported` and the host lock is all there is.

A VISA lock is invisible from outside its session: VISA cannot say who holds
it, nor list locks, nor break one. :meth:`~VisaBackend.holders`,
:meth:`~VisaBackend.list` and :meth:`~VisaBackend.force_release` raise
:class:`~pytest_litmus.locks.LockUnsupported`; closing the session releases it.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from pytest_litmus.errors import ResourceInUse
from pytest_litmus.locks._api import (
    Hold,
    LockBackend,
    LockKind,
    LockMode,
    LockState,
    LockUnsupported,
    OnContended,
    ReleaseResult,
    check_timeout,
)

__all__ = ["VISA_SHARED_KEY", "VisaBackend", "release_visa_lock", "take_visa_lock"]

_LOG = logging.getLogger("pytest_litmus.locking")

#: The ``requested_key`` every litmus session uses for shared VISA locks, so they share.
VISA_SHARED_KEY = "litmus"
_VI_ERROR_NSUP_OPER = -1073807257  # pyvisa.constants.StatusCode.error_nonsupported_operation
_VI_ERROR_RSRC_LOCKED = -1073807345
_VI_ERROR_TMO = -1073807339
_VI_TMO_INFINITE = 0xFFFFFFFF


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "error_code", None)
    return int(code) if isinstance(code, int) else None


def _unsupported(exc: BaseException) -> bool:
    """``NotImplementedError`` or ``VisaIOError(VI_ERROR_NSUP_OPER)``: the backend takes no VISA locks."""
    return isinstance(exc, NotImplementedError) or _error_code(exc) == _VI_ERROR_NSUP_OPER


def _unlock(session: Any) -> None:
    """``unlock``; a failure is logged, not raised (closing the session releases it anyway)."""
    try:
        session.unlock()
    except Exception as exc:
        _LOG.warning("could not unlock the VISA lock on %s: %s", getattr(session, "resource_name", session), exc)


class VisaBackend(LockBackend):
    """Instrument-side locks through one opened pyvisa ``session`` (the resource it names)."""

    kind = "visa"
    can_list = False

    def __init__(self, session: Any) -> None:
        self.session = session

    @property
    def name(self) -> str:
        return str(getattr(self.session, "resource_name", self.session))

    def __repr__(self) -> str:
        return f"VisaBackend({self.name!r})"

    def _acquire(
        self,
        resource: str,
        mode: LockMode,
        timeout: float | None,
        record: dict[str, Any],
        on_contended: OnContended | None,
    ) -> tuple[Hold | None, float]:
        """VISA waits itself (its lock timeout); a refusal says nothing of the holder."""
        # longer than VISA's longest finite timeout (~49 days) is forever; pyvisa refuses larger numbers
        timeout_ms = _VI_TMO_INFINITE if timeout is None else min(int(timeout * 1000), _VI_TMO_INFINITE)
        try:
            if mode == "shared":
                self.session.lock(timeout=timeout_ms, requested_key=VISA_SHARED_KEY)
            else:
                self.session.lock_excl(timeout=timeout_ms)
        except Exception as exc:
            if _unsupported(exc):
                raise LockUnsupported(f"{self.name}: this VISA session takes no instrument locks") from exc
            if _error_code(exc) in (_VI_ERROR_TMO, _VI_ERROR_RSRC_LOCKED):
                holder = {"kind": "visa", "host": "another VISA session (maybe another machine)"}
                raise ResourceInUse(resource, holder, waited=timeout or 0.0) from exc
            raise
        return Hold(self, resource, mode, record), 0.0

    def _release(self, hold: Hold) -> None:
        _unlock(self.session)

    def _cannot(self, what: str) -> NoReturn:
        raise LockUnsupported(f"VISA cannot {what}: a VISA lock is visible only to the session holding it")

    def holders(self, resource: str) -> list[dict[str, Any]]:
        self._cannot("say who holds a lock")

    def list(self) -> list[LockState]:
        self._cannot("list locks")

    def force_release(self, resource: str, *, only_stale: bool = False) -> ReleaseResult:
        self._cannot("release another session's lock")


def take_visa_lock(resource: Any, mode: LockMode, timeout: float | None = 0.0) -> LockKind:
    """Take the VISA lock on an opened pyvisa ``resource``; the kind of lock now held.

    ``visa``; ``host`` where the library takes no VISA locks; ``none`` for mode ``none``.

    Kept for callers of the old function API; :class:`VisaBackend` is the backend.
    A VISA lock held elsewhere raises :class:`ResourceInUse`.
    """
    if mode == "none":
        return "none"
    check_timeout(timeout)
    try:
        VisaBackend(resource).acquire(str(getattr(resource, "resource_name", resource)), mode, timeout)
    except LockUnsupported:
        return "host"
    return "visa"


def release_visa_lock(resource: Any, kind: str) -> None:
    """Undo :func:`take_visa_lock` (only when it returned ``visa``); a failure is logged, not raised."""
    if kind == "visa":
        _unlock(resource)
