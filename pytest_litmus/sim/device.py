"""A pyvisa-sim device with the IEEE 488.2 status model, timed operations and VISA locks.

pyvisa-sim builds plain :class:`pyvisa_sim.devices.Device` objects while it
parses a simulation file; :meth:`SimDevice.adopt` turns each into this
subclass afterwards, so the parsing stays pyvisa-sim's own.

Precedence: the 488.2 common commands the status model implements (``*CLS``,
``*ESE``, ``*ESE?``, ``*ESR?``, ``*SRE``, ``*SRE?``, ``*STB?``, ``*OPC``,
``*OPC?``, ``*WAI``) are always answered by the model, even where the file
defines a dialogue or a ``status_register`` for them. Everything else is the
file's; ``SYST:ERR?`` is answered from the model's error queue only when the
file does not answer it.

Program messages are parsed here, not by pyvisa-sim's ``Device.write``: a
message ends at the file's query terminator or at a newline (a ``\r`` before
it is whitespace), units are split at ``;`` outside quotes and blocks (see
:mod:`~pytest_litmus.sim.blocks`), ``*WAI`` holds the parser (later input
waits until no operation is pending, then is parsed on the timer thread), and
a new message with a response unread is ``-410,"Query INTERRUPTED"``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final

from pyvisa_sim.component import NoResponse
from pyvisa_sim.devices import Device

from pytest_litmus.sim.blocks import INVALID_CHARACTER, BadUnit, BlockUnit, Unit, definite, split_units
from pytest_litmus.sim.faults import Faults, FaultSpec, fault_spec
from pytest_litmus.sim.locks import ResourceLocks
from pytest_litmus.sim.simfile import DeviceExtension, Operation
from pytest_litmus.sim.status import (
    CME,
    DDE,
    ERROR_QUERIES,
    EXE,
    NO_RESPONSE,
    QUERY_INTERRUPTED,
    QYE,
    WAIT,
    StatusModel,
)

__all__ = ["SimDevice"]

_ERROR_QUERIES = tuple(query.encode() for query in ERROR_QUERIES)
#: the ESR bit of an error by its SCPI code range
_ERROR_BITS = ((-199, -100, CME), (-299, -200, EXE), (-499, -400, QYE))


class _Unsolicited(bytearray):
    """An output message a real instrument would not send (the file's ``error:`` text for a bad command)."""


_Held = tuple[Hashable, "bytes | list[Unit]"]


class SimDevice(Device):  # type: ignore[misc]  # pyvisa-sim ships no type information
    """One simulated instrument; every method takes :attr:`cond` (re-entrant).

    Output goes to the queue of the current *channel* (:meth:`select`): every
    VISA session of a library shares :data:`BUS` (one instrument, one output
    queue, as on GPIB), while each connection of a network front door has a
    channel of its own (a LAN instrument answers a connection on that
    connection). A deferred ``*OPC?`` answer goes to the channel that asked.
    """

    #: the channel every library session uses unless given its own
    BUS: Final = "bus"

    cond: threading.Condition
    #: the re-entrant lock under :attr:`cond`: entering it directly skips ``Condition.__enter__`` (a Python frame)
    mutex: Any
    status: StatusModel
    locks: ResourceLocks
    extension: DeviceExtension
    service_requests: bool
    serial_poll: bool
    triggers: int
    faults: Faults
    _input_buffer: bytearray
    _output_buffers: deque[bytearray]
    #: faults armed or the parser held: I/O takes the checked path (the only per-call cost otherwise)
    hooked: bool
    #: the last block received per query header (``CURV?`` for ``CURV #...``), and the file's block answers
    blocks: dict[str, bytes]

    @classmethod
    def adopt(
        cls, device: Device, extension: DeviceExtension, on_service_request: Callable[[SimDevice], None]
    ) -> SimDevice:
        """Turn a parsed pyvisa-sim device into a :class:`SimDevice`."""
        device.__class__ = cls
        assert isinstance(device, SimDevice)
        device._setup(extension, on_service_request)
        return device

    def _setup(self, extension: DeviceExtension, on_service_request: Callable[[SimDevice], None]) -> None:
        self.mutex = threading.RLock()
        self.cond = threading.Condition(self.mutex)
        self.extension = extension
        self.service_requests = extension.service_requests
        self.serial_poll = extension.serial_poll
        self.triggers = 0
        self.locks = ResourceLocks(self.cond)
        self._operations: set[threading.Timer] = set()
        self._invalid_setting = False
        self._on_service_request = on_service_request
        self._channel: Hashable = self.BUS
        self._queues: dict[Hashable, deque[bytearray]] = {self.BUS: self._output_buffers}
        self._held: list[_Held] | None = None  # *WAI: input waiting for no-operation-pending, by channel
        self.blocks = dict(extension.blocks)
        self.faults = Faults()
        for spec in extension.faults:
            self.faults.add(spec)
        self._rehook()
        self._non_ascii_text = any(not key.isascii() for key in (*self._dialogues, *self._getters))
        self.status = StatusModel(
            output_pending=self.has_output,
            current_channel=lambda: self._channel,
            answer_opc_query=lambda channel: self.queue_output(b"1", channel),
            request_service=lambda: self._on_service_request(self),
            keeps_error_queue=not self._file_answers(_ERROR_QUERIES),
        )

    # -- output channels -----------------------------------------------------

    def select(self, channel: Hashable) -> None:
        """Make ``channel`` current: writes answer into, and reads take from, its queue (call under :attr:`mutex`)."""
        if channel != self._channel:
            queue = self._queues.get(channel)
            if queue is None:
                queue = self._queues[channel] = deque()
            self._output_buffers = queue
            self._channel = channel

    def drop_channel(self, channel: Hashable) -> None:
        """Forget a closed connection's channel: its unread output and deferred ``*OPC?`` answers."""
        if channel == self.BUS:
            return
        with self.cond:
            if self._channel == channel:
                self.select(self.BUS)
            self._queues.pop(channel, None)
            self.status.forget_channel(channel)
            if self._held is not None:
                self._held = [item for item in self._held if item[0] != channel]

    # -- output queue --------------------------------------------------------

    def has_output(self) -> bool:
        """The current channel has a message to read (MAV)."""
        return bool(self._output_buffers)

    def has_output_on(self, channel: Hashable) -> bool:
        return bool(self._queues.get(channel))

    @property
    def query_eom(self) -> bytes:
        return bytes(self._query_eom)

    @property
    def response_eom(self) -> bytes:
        return bytes(self._response_eom)

    def queue_output(self, message: bytes, channel: Hashable | None = None) -> None:
        """Queue ``message`` (plus the response terminator) on ``channel`` (default: the current one)."""
        with self.cond:
            queue = self._output_buffers if channel is None else self._queues.get(channel)
            if queue is None:  # the channel closed while its answer was pending
                return
            queue.append(bytearray(message) + self._response_eom)
            self.status.update()
            self.cond.notify_all()

    def take_message(self, channel: Hashable = BUS) -> bytes:
        """Pop one whole message from ``channel``'s output queue (``b""`` if empty)."""
        with self.cond:
            queue = self._queues.get(channel)
            if not queue:
                return b""
            message = bytes(queue.popleft())
            self.status.update()
            return message

    # -- bus messages ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Bytes from the controller on the current channel (pyvisa-sim's ``Device.write``, re-implemented)."""
        with self.mutex:
            if self.hooked:
                if self.faults.disconnected:
                    return
                if self._held is not None:  # *WAI holds the parser: the input waits
                    self._held.append((self._channel, bytes(data)))
                    return
            self._receive(data)
            self.status.update()
            self.cond.notify_all()

    def _receive(self, data: bytes) -> None:
        buffer: bytearray = self._input_buffer
        buffer += data
        eom = self._query_eom
        if eom and buffer.endswith(eom):
            message = bytes(buffer[: -len(eom)])
        elif buffer.endswith(b"\n") or not eom:  # NL ends a message whatever the file says (488.2, 7.5)
            message = bytes(buffer[:-1] if eom else buffer)
        else:
            return
        units: list[Unit]
        if b"#" in message or b'"' in message or b"'" in message or not message.isascii():
            split = split_units(message, self.delimiter)
            if split is None:  # the terminator was a byte of a definite-length block: more to come
                return
            units = split
        else:
            units = message.split(self.delimiter) if self.delimiter else [message]  # type: ignore[assignment]
        self._input_buffer = bytearray()
        queue = self._output_buffers
        if queue:  # a new program message with output unread (IEEE 488.2, 6.3.2.3)
            interrupted = any(type(message) is bytearray for message in queue)
            queue.clear()
            if interrupted:
                self.status.set_event(QYE, QUERY_INTERRUPTED)
        self._run(units)

    def _run(self, units: list[Unit]) -> None:
        for index, unit in enumerate(units):
            if self.hooked and (self._held is not None or self.faults.disconnected):
                if self._held is not None:  # *WAI: the rest of the message waits too
                    self._held.insert(0, (self._channel, units[index:]))
                return
            self._unit(unit)

    def _unit(self, unit: Unit) -> None:
        """Execute one program message unit and queue its answer."""
        response: Any
        if type(unit) is bytes:
            query = unit.strip()
            if not query:
                return  # an empty unit (``;;``, a blank line) is no command
            if not query.isascii() and not self._text_ok(query):
                response, header = NoResponse, ""
                self.status.set_event(CME, INVALID_CHARACTER)
            else:
                response = self._match(query)
                header = query.split(b" ", 1)[0].decode("utf-8", "replace").upper() if self.hooked else ""
        elif isinstance(unit, BlockUnit):
            self.blocks[unit.header + "?"] = unit.payload
            response, header = NoResponse, unit.header
        else:
            assert isinstance(unit, BadUnit)
            self.status.set_event(CME, unit.error)
            response, header = NoResponse, ""
        unsolicited = response is None
        if unsolicited:
            response = self.error_response("command_error")
            if response is None:
                response = NoResponse
        if self.hooked and self.faults:
            response = self.faults.apply(header, response, NoResponse, self._queue_error)
            if not self.faults:  # the last fault expired: back to the unchecked path
                self._rehook()
        if response is not NoResponse:
            message = _Unsolicited(response) if unsolicited else bytearray(response)
            message += self._response_eom
            self._output_buffers.append(message)

    def _text_ok(self, query: bytes) -> bool:
        """Non-ASCII text goes to the matchers only if valid UTF-8 and the file itself has non-ASCII commands."""
        if not self._non_ascii_text:
            return False
        try:
            query.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def _queue_error(self, error: str) -> None:
        code = int(error.split(",", 1)[0]) if error.split(",", 1)[0].lstrip("+-").isdigit() else 0
        bit = next((bit for low, high, bit in _ERROR_BITS if low <= code <= high), DDE)
        self.status.set_event(bit, error)
        if not self.status.keeps_error_queue:  # the file answers SYST:ERR?: the fault answers it until read
            self.faults.errors.append(error)

    # -- held parser (*WAI) and faults ------------------------------------------

    def awaiting(self, channel: Hashable) -> bool:
        """An answer for ``channel`` is on its way: a deferred ``*OPC?``, or input held by ``*WAI``."""
        if self.status.deferred_for(channel):
            return True
        held = self._held
        return held is not None and any(item[0] == channel for item in held)

    def _resume(self) -> None:
        """No operation pending: parse the held input, in order, on its own channels (under :attr:`cond`)."""
        held, self._held = self._held or [], None
        previous = self._channel
        while held and self._held is None:
            channel, item = held.pop(0)
            self.select(channel)
            if isinstance(item, list):
                self._run(item)
            else:
                self._receive(item)
        if self._held is not None:  # another *WAI
            self._held.extend(held)
        self.select(previous)
        self._rehook()
        self.status.update()
        self.cond.notify_all()

    def _rehook(self) -> None:
        self.hooked = self._held is not None or bool(self.faults)

    def inject(self, kind: str, **params: Any) -> FaultSpec:
        """Arm a fault (see :mod:`pytest_litmus.sim.faults`); a ``StationConfigError`` for bad arguments."""
        spec = fault_spec(kind, params)
        with self.cond:
            self.faults.add(spec)
            self._rehook()
            self.cond.notify_all()
        return spec

    def clear_faults(self) -> None:
        """Disarm every fault; a dropped connection is back."""
        with self.cond:
            self.faults.clear()
            self._rehook()
            self.cond.notify_all()

    def serial_poll_byte(self) -> int:
        with self.cond:
            return self.status.serial_poll()

    def device_clear(self) -> None:
        """viClear (DCL/SDC): input and output cleared, operations and OPC watch idle."""
        with self.cond:
            self._input_buffer = bytearray()
            self._held = None
            self._rehook()
            for queue in self._queues.values():
                queue.clear()
            self._abort_operations()
            self.status.update()
            self.cond.notify_all()

    def trigger(self) -> None:
        """viAssertTrigger (GET): starts a ``*TRG`` operation if the file declares one."""
        with self.cond:
            self.triggers += 1
            operation = self.extension.operation_for("*TRG")
            if operation is not None:
                self._start(operation)

    def query_unterminated(self) -> None:
        """A read found nothing to send: query error (IEEE 488.2, 6.3.2.2)."""
        with self.cond:
            self.status.set_event(QYE)

    # -- pyvisa-sim hooks -----------------------------------------------------

    def _match(self, query: bytes) -> Any:
        text = query.decode("utf-8", "replace").strip()
        header, _, argument = text.partition(" ")
        header = header.upper()
        if header.startswith("*"):  # only common commands reach the status model
            reply = self.status.execute(header, argument.strip())
            if reply is WAIT:  # hold the parser: the rest of the input waits for no-operation-pending
                self._held = []
                self.hooked = True
                return NoResponse
            if reply is NO_RESPONSE:
                return NoResponse
            if isinstance(reply, str):
                return reply.encode()
            if header == "*RST":
                self._abort_operations()
        operation = self.extension.operation_by_header.get(header)
        if operation is not None:
            self._start(operation)
        self._invalid_setting = False
        if self.blocks:
            block = self.blocks.get(header)
            if block is not None:
                return definite(block)
        response = super()._match(query)
        if response is None and (operation is not None or header == "*RST"):
            return NoResponse
        if response is None and self.status.keeps_error_queue and header.encode() in _ERROR_QUERIES:
            return self.status.next_error().encode()
        return response

    def _match_setters(self, query: bytes) -> Any:
        """pyvisa-sim's own setter match, parsing once, plus EXE for a value out of range.

        The loop is pyvisa-sim's (``Component._match_setters``); re-implemented so a
        setter is parsed once rather than once here and once in the base class.
        """
        text = query.decode("utf-8", "replace")
        for name, parser, response, error_response in self._setters:
            try:
                value = parser(text)
            except ValueError:
                continue
            try:
                self._properties[name].set_value(value)
                return response
            except ValueError:
                if not self._invalid_setting:
                    self._invalid_setting = True
                    self.status.set_event(EXE)
                if isinstance(error_response, bytes):
                    return error_response
        return None

    def error_response(self, error_key: str) -> bytes | None:
        if error_key == "command_error" and not self._invalid_setting:
            self.status.set_event(CME)
        elif error_key == "query_error":
            self.status.set_event(QYE)
        response: bytes | None = super().error_response(error_key)
        return response

    def _file_answers(self, queries: tuple[bytes, ...]) -> bool:
        return any(q in self._dialogues or q in self._getters or q in self._error_queues for q in queries)

    # -- timed operations ------------------------------------------------------

    def _start(self, operation: Operation) -> None:
        self.status.start_operation()
        timer = threading.Timer(operation.seconds, self._finish, args=(operation,))
        timer.daemon = True
        self._operations.add(timer)
        timer.start()

    def _finish(self, operation: Operation) -> None:
        with self.cond:
            timer = threading.current_thread()
            if timer not in self._operations:
                return  # aborted by *RST or device clear
            self._operations.discard(timer)
            if operation.device_error is not None:
                self.status.set_event(DDE, operation.device_error)
            self.status.finish_operation()
            if self._held is not None and not self.status.pending:
                self._resume()
            self.cond.notify_all()

    def _abort_operations(self) -> None:
        for timer in self._operations:
            timer.cancel()
        self._operations.clear()
        self.status.abort_operations()
