"""The IEEE 488.2 status model of one simulated instrument.

Pure state, no VISA: the event status register (ESR) and its enable mask
(ESE), the service request enable mask (SRE), the operation-complete watch
of ``*OPC`` / ``*OPC?``, a SCPI error queue, and the status byte with MAV,
ESB and RQS/MSS. The owner (:class:`~pytest_litmus.sim.device.SimDevice`)
holds its lock around every call and is told, through the callbacks, when
to queue a deferred ``*OPC?`` answer and when a new service request arises.

Serial poll (``read_stb``) reports RQS in bit 6 and clears it; ``*STB?``
reports MSS in bit 6 and clears nothing (IEEE 488.2, 11.2.2).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Final

__all__ = [
    "CME",
    "DDE",
    "EAV",
    "ERROR_QUERIES",
    "ESB",
    "EXE",
    "MAV",
    "NO_RESPONSE",
    "OPC",
    "QUERY_INTERRUPTED",
    "QUEUE_OVERFLOW",
    "QYE",
    "RQS",
    "WAIT",
    "StatusModel",
]

# Event status register (ESR / ESE) bits.
OPC: Final = 0x01  # operation complete
QYE: Final = 0x04  # query error
DDE: Final = 0x08  # device-dependent error
EXE: Final = 0x10  # execution error
CME: Final = 0x20  # command error

# Status byte (STB / SRE) bits.
EAV: Final = 0x04  # error/event queue not empty (SCPI)
MAV: Final = 0x10  # message available
ESB: Final = 0x20  # event status bit: ESR & ESE != 0
RQS: Final = 0x40  # request service (serial poll) / master summary (*STB?)

ERROR_QUEUE_SIZE: Final = 20
NO_ERROR: Final = '0,"No error"'
#: The SCPI queries that read the error queue (upper-cased headers).
ERROR_QUERIES: Final = frozenset({"SYST:ERR?", "SYSTEM:ERROR?", "SYST:ERR:NEXT?", "SYSTEM:ERROR:NEXT?"})
QUEUE_OVERFLOW: Final = '-350,"Queue overflow"'
QUERY_INTERRUPTED: Final = '-410,"Query INTERRUPTED"'
ERRORS: Final = {
    CME: '-113,"Undefined header"',
    EXE: '-222,"Data out of range"',
    QYE: '-420,"Query UNTERMINATED"',
    DDE: '-300,"Device-specific error"',
}


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: ``execute`` result: the command was handled and produces no answer.
NO_RESPONSE: Final = _Marker("NO_RESPONSE")
#: ``execute`` result: ``*WAI``; the caller holds the parser until no operation is pending.
WAIT: Final = _Marker("WAIT")

Reply = str | _Marker | None


class StatusModel:
    """ESR, ESE, SRE, the OPC watch, the error queue and the status byte of one device.

    ``output_pending()`` tells whether the output queue holds a message (MAV);
    ``current_channel()`` names the channel the command being parsed came on;
    ``answer_opc_query(channel)`` queues the deferred ``1`` of an ``*OPC?`` there;
    ``request_service()`` is called on each new reason for service (a bit of
    ``STB & SRE`` rising), which is when a real device asserts SRQ.
    """

    def __init__(
        self,
        *,
        output_pending: Callable[[], bool],
        current_channel: Callable[[], Hashable],
        answer_opc_query: Callable[[Hashable], None],
        request_service: Callable[[], None],
        keeps_error_queue: bool = True,
    ) -> None:
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.pending = 0
        self.errors: deque[str] = deque()
        self.keeps_error_queue = keeps_error_queue
        self._rqs = False
        self._summary = 0
        self._opc_armed = False
        self._opc_queries: list[Hashable] = []  # the channel of each deferred *OPC?, oldest first
        self._current_channel = current_channel
        self._output_pending = output_pending
        self._answer_opc_query = answer_opc_query
        self._request_service = request_service

    # -- the status byte ---------------------------------------------------

    def status_byte(self) -> int:
        """STB bits 0-5 and 7 (bit 6 depends on how it is read)."""
        stb = 0
        if self.errors:
            stb |= EAV
        if self._output_pending():
            stb |= MAV
        if self.esr & self.ese:
            stb |= ESB
        return stb

    def stb_query(self) -> int:
        """``*STB?``: the status byte with MSS in bit 6; clears nothing."""
        stb = self.status_byte()
        return stb | RQS if stb & self.sre & ~RQS else stb

    def serial_poll(self) -> int:
        """``read_stb``: the status byte with RQS in bit 6, then RQS is cleared."""
        stb = self.status_byte() | (RQS if self._rqs else 0)
        self._rqs = False
        return stb

    @property
    def requesting_service(self) -> bool:
        """RQS: a service request not yet acknowledged by a serial poll."""
        return self._rqs

    def update(self) -> None:
        """Re-evaluate the summary; a newly set enabled bit is a new service request."""
        if not self.sre:  # nothing enabled: no summary, no request (the common case, kept cheap)
            self._rqs = False
            self._summary = 0
            return
        summary = self.status_byte() & self.sre & ~RQS
        if summary & ~self._summary:
            self._rqs = True
            self._summary = summary
            self._request_service()
        elif not summary:
            self._rqs = False
        self._summary = summary

    # -- events ------------------------------------------------------------

    def set_event(self, bit: int, error: str | None = None) -> None:
        """Set an ESR bit; errors also go to the error queue."""
        self.esr |= bit
        message = error if error is not None else ERRORS.get(bit)
        if message is not None and self.keeps_error_queue:
            self._queue_error(message)
        self.update()

    def _queue_error(self, message: str) -> None:
        """Keep the oldest errors: when full, the last entry becomes -350 and newer errors are lost (SCPI 21.8.2)."""
        if len(self.errors) < ERROR_QUEUE_SIZE:
            self.errors.append(message)
        else:
            self.errors[-1] = QUEUE_OVERFLOW

    def next_error(self) -> str:
        """``SYST:ERR?``: the oldest error, or ``0,"No error"``."""
        message = self.errors.popleft() if self.errors else NO_ERROR
        self.update()
        return message

    # -- operations --------------------------------------------------------

    def start_operation(self) -> None:
        self.pending += 1

    def finish_operation(self) -> None:
        """One pending operation completed; at no-operation-pending fire the OPC watch."""
        self.pending = max(0, self.pending - 1)
        if self.pending == 0:
            self._complete()

    def abort_operations(self) -> None:
        """``*RST`` / device clear: operations abandoned, OPC watch back to idle."""
        self.pending = 0
        self._opc_armed = False
        self._opc_queries.clear()

    def forget_channel(self, channel: Hashable) -> None:
        """A channel closed: its deferred ``*OPC?`` answers go nowhere."""
        self._opc_queries = [c for c in self._opc_queries if c != channel]

    def _complete(self) -> None:
        if self._opc_armed:
            self._opc_armed = False
            self.set_event(OPC)
        queries, self._opc_queries = self._opc_queries, []
        for channel in queries:
            self._answer_opc_query(channel)

    def deferred_for(self, channel: Hashable) -> bool:
        """An ``*OPC?`` asked on ``channel`` is waiting for the pending operations to complete."""
        return channel in self._opc_queries

    # -- common commands ---------------------------------------------------

    def execute(self, header: str, argument: str) -> Reply:
        """Run a 488.2 common command (``header`` upper-cased); ``None`` if it is not one.

        Returns the answer text, :data:`NO_RESPONSE`, or :data:`WAIT` for ``*WAI``.
        """
        handler = _COMMANDS.get(header)
        if handler is None:
            return None
        reply = handler(self, argument)
        self.update()
        return reply

    def _cls(self, _argument: str) -> Reply:
        self.esr = 0
        self.errors.clear()
        self._opc_armed = False
        self._opc_queries.clear()
        return NO_RESPONSE

    def _set_mask(self, argument: str, attribute: str) -> Reply:
        try:
            value = int(float(argument))
        except ValueError:
            self.set_event(CME, '-104,"Data type error"')
            return NO_RESPONSE
        if not 0 <= value <= 255:
            self.set_event(EXE)
            return NO_RESPONSE
        setattr(self, attribute, value)
        return NO_RESPONSE

    def _ese(self, argument: str) -> Reply:
        return self._set_mask(argument, "ese")

    def _sre(self, argument: str) -> Reply:
        reply = self._set_mask(argument, "sre")
        self.sre &= ~RQS  # bit 6 of SRE is ignored and reads back 0 (IEEE 488.2, 11.3.2.3)
        return reply

    def _esr_query(self, _argument: str) -> Reply:
        value, self.esr = self.esr, 0
        return str(value)

    def _opc(self, _argument: str) -> Reply:
        if self.pending:
            self._opc_armed = True
        else:
            self.set_event(OPC)
        return NO_RESPONSE

    def _opc_query(self, _argument: str) -> Reply:
        if self.pending:
            self._opc_queries.append(self._current_channel())
            return NO_RESPONSE
        return "1"

    def _wai(self, _argument: str) -> Reply:
        return WAIT if self.pending else NO_RESPONSE


_COMMANDS: dict[str, Callable[[StatusModel, str], Reply]] = {
    "*CLS": StatusModel._cls,
    "*ESE": StatusModel._ese,
    "*ESE?": lambda m, _a: str(m.ese),
    "*ESR?": StatusModel._esr_query,
    "*SRE": StatusModel._sre,
    "*SRE?": lambda m, _a: str(m.sre),
    "*STB?": lambda m, _a: str(m.stb_query()),
    "*OPC": StatusModel._opc,
    "*OPC?": StatusModel._opc_query,
    "*WAI": StatusModel._wai,
}
