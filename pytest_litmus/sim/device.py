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
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final

from pyvisa_sim.component import NoResponse
from pyvisa_sim.devices import Device

from pytest_litmus.sim.locks import ResourceLocks
from pytest_litmus.sim.simfile import DeviceExtension, Operation
from pytest_litmus.sim.status import CME, DDE, EXE, NO_RESPONSE, QYE, WAIT, StatusModel

__all__ = ["SimDevice"]

_ERROR_QUERIES = (b"SYST:ERR?", b"SYSTEM:ERROR?", b"SYST:ERR:NEXT?", b"SYSTEM:ERROR:NEXT?")


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
        with self.mutex:
            super().write(data)
            self.status.update()
            self.cond.notify_all()

    def serial_poll_byte(self) -> int:
        with self.cond:
            return self.status.serial_poll()

    def device_clear(self) -> None:
        """viClear (DCL/SDC): input and output cleared, operations and OPC watch idle."""
        with self.cond:
            self._input_buffer = bytearray()
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
            if reply is WAIT:
                self.cond.wait_for(lambda: self.status.pending == 0)
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
            self.cond.notify_all()

    def _abort_operations(self) -> None:
        for timer in self._operations:
            timer.cancel()
        self._operations.clear()
        self.status.abort_operations()
