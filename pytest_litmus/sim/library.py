"""pytest-litmus' VISA library: pyvisa-sim plus locks, the status model and service requests.

:class:`LitmusSimLibrary` subclasses pyvisa-sim's ``SimVisaLibrary`` and adds
the VISA operations it leaves out (``lock``, ``unlock``, ``read_stb``,
``clear``, ``assert_trigger``, ``enable_event``, ``disable_event``,
``discard_events``, ``wait_on_event``, ``install_handler``,
``uninstall_handler``), with the return conventions of pyvisa's
``VisaLibraryBase``: errors go through ``handle_return_value``, which raises
``VisaIOError``. Waits are on each device's condition variable, never polls,
except a VISA lock held by another process (:mod:`pytest_litmus.sim.hostlocks`).

One library per simulation file is *current* in a process (:func:`current_sim_library`):
every resource manager built on it sees one instrument per resource.
Service requests and serial poll exist only on the interface classes that have
them in NI-VISA (:mod:`pytest_litmus.sim.interfaces`).

Why this module is just over 500 lines: it is one class, one method per VISA operation
pyvisa-sim lacks; the device model, status model and locks it calls are modules of their own.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from pyvisa import constants
from pyvisa_sim.highlevel import SimVisaLibrary

from pytest_litmus.sim.device import SimDevice
from pytest_litmus.sim.hostlocks import WAIT, HostLock, host_lock
from pytest_litmus.sim.interfaces import SRQ_INTERFACES, read_stb_kind
from pytest_litmus.sim.locks import timeout_seconds
from pytest_litmus.sim.simfile import DeviceExtension, load_extensions

__all__ = ["LitmusSimLibrary", "current_sim_library", "fresh_sim_library"]

log = logging.getLogger(__name__)
StatusCode = constants.StatusCode
EventType = constants.EventType
Mechanism = constants.EventMechanism
SRQ = EventType.service_request

_SUPPRESS_END = constants.ResourceAttribute.suppress_end_enabled
_TERMCHAR = constants.ResourceAttribute.termchar
_TERMCHAR_ENABLED = constants.ResourceAttribute.termchar_enabled

#: VI_ATTR_MAX_QUEUE_LENGTH default: older events are dropped past it.
EVENT_QUEUE_LENGTH = 50


class _SessionEvents:
    """Service-request state of one session (guarded by its device's condition)."""

    __slots__ = (
        "channel",
        "device",
        "handler_enabled",
        "handlers",
        "interface",
        "queue",
        "queue_enabled",
        "resource",
        "serial",
    )

    def __init__(self, device: SimDevice, resource: str, interface: tuple[Any, str], *, serial: bool = False) -> None:
        self.device = device
        self.resource = resource
        self.interface = interface
        self.channel: Hashable = SimDevice.BUS
        #: the resource is serial (ASRL): reads keep pyvisa-sim's byte loop, whose END rules differ there
        self.serial = serial
        self.queue_enabled = False
        self.handler_enabled = False
        self.queue: deque[EventType] = deque(maxlen=EVENT_QUEUE_LENGTH)
        self.handlers: list[tuple[Any, Any]] = []


class EventContext:
    """A VISA event context handle: answers ``VI_ATTR_EVENT_TYPE``."""

    def __init__(self, event_type: EventType) -> None:
        self.event_type = event_type

    def get_attribute(self, attribute: Any) -> tuple[Any, StatusCode]:
        if attribute == constants.EventAttribute.event_type:
            return self.event_type, StatusCode.success
        return 0, StatusCode.error_nonsupported_attribute


class LitmusSimLibrary(SimVisaLibrary):  # type: ignore[misc]  # pyvisa-sim ships no type information
    """A simulated VISA library; build one with :func:`pytest_litmus.sim.resource_manager`."""

    def _init(self) -> None:
        super()._init()
        path = str(self.library_path)
        extensions = {} if path == "unset" else load_extensions(path)
        self._events: dict[int, _SessionEvents] = {}
        self._realpath = _realpath(path)
        self._hosts: dict[str, HostLock | None] = {}
        self._hosts_mutex = threading.Lock()
        for name in self.devices.list_resources():
            SimDevice.adopt(self.devices[name], extensions.get(name, DeviceExtension()), self._service_request)

    def device(self, resource_name: str) -> SimDevice:
        """The simulated device behind ``resource_name`` (to flip its capabilities in tests)."""
        from pyvisa.rname import to_canonical_name

        device: SimDevice = self.devices[to_canonical_name(resource_name)]
        return device

    # -- sessions ------------------------------------------------------------

    def open(
        self,
        session: Any,
        resource_name: str,
        access_mode: constants.AccessModes = constants.AccessModes.no_lock,
        open_timeout: Any = constants.VI_TMO_IMMEDIATE,
    ) -> tuple[Any, StatusCode]:
        handle, status = super().open(session, resource_name, access_mode, open_timeout)
        if status != StatusCode.success:
            return handle, status
        device = getattr(self.sessions.get(handle), "device", None)
        if not isinstance(device, SimDevice):  # not one of this file's devices (cannot happen: adopted in _init)
            self.close(handle)
            return 0, self._check(None, StatusCode.error_resource_not_found)
        parsed = self.sessions[handle]
        resource = str(parsed.attrs[constants.ResourceAttribute.resource_name])
        with device.cond:
            interface = parsed.session_type
            self._events[handle] = _SessionEvents(
                device, resource, interface, serial=interface[0] == constants.InterfaceType.asrl
            )
        lock_type = None
        if access_mode & constants.AccessModes.exclusive_lock:
            lock_type = constants.Lock.exclusive
        elif access_mode & constants.AccessModes.shared_lock:
            lock_type = constants.Lock.shared
        if lock_type is not None:
            _key, lock_status = self._acquire(handle, lock_type, int(open_timeout), None)
            if lock_status < 0:
                self.close(handle)
                return 0, self._check(None, lock_status)
        return handle, status

    def close(self, session: Any) -> StatusCode:
        state = self._events.pop(session, None)
        if state is not None:
            state.device.drop_channel(state.channel)
            state.device.locks.release_all(session)
            self._sync_host(state, WAIT.start(None))
            with state.device.cond:
                state.device.cond.notify_all()
        status: StatusCode = super().close(session)
        return status

    def get_attribute(self, session: Any, attribute: Any) -> tuple[Any, StatusCode]:
        """pyvisa-sim's attributes, plus VI_ATTR_RSRC_LOCK_STATE as this process and others hold it."""
        if attribute == constants.ResourceAttribute.resource_lock_state:
            state = self._events.get(session)
            if state is not None:
                return self._lock_state(state), StatusCode.success
        result: tuple[Any, StatusCode] = super().get_attribute(session, attribute)
        return result

    # -- I/O -----------------------------------------------------------------

    def set_channel(self, session: Any, channel: Hashable) -> None:
        """Give ``session`` an output channel of its own (a network connection: its answers come back to it)."""
        state = self._events[session]
        with state.device.cond:
            state.device.drop_channel(state.channel)
            state.channel = channel

    def write(self, session: Any, data: bytes) -> tuple[int, StatusCode]:
        state = self._events.get(session)
        if state is None:
            result: tuple[int, StatusCode] = super().write(session, data)
            return result
        device = state.device
        with device.mutex:
            if not device.locks.allows(session):
                return 0, self._check(session, StatusCode.error_resource_locked)
            device.select(state.channel)
            device.write(data)
            if device.hooked and device.faults.disconnected:  # an injected fault (sim/faults.py)
                return 0, self._check(session, StatusCode.error_connection_lost)
        return len(data), self._check(session, StatusCode.success)

    def read(self, session: Any, count: int) -> tuple[bytes, StatusCode]:
        state = self._events.get(session)
        if state is None:
            result: tuple[bytes, StatusCode] = super().read(session, count)
            return result
        device = state.device
        with device.mutex:
            if not device.locks.allows(session):
                return b"", self._check(session, StatusCode.error_resource_locked)
            channel = state.channel
            device.select(channel)
            if device.hooked and device.faults.disconnected:
                return b"", self._check(session, StatusCode.error_connection_lost)
            if not device.has_output():
                arrived = device.cond.wait_for(
                    lambda: device.has_output_on(channel) or device.faults.disconnected, self._timeout_s(session)
                )
                device.select(channel)  # another session may have spoken while we waited
                if device.faults.disconnected:
                    return b"", self._check(session, StatusCode.error_connection_lost)
                if not arrived:
                    if not device.awaiting(channel):  # no query error while an answer is on its way
                        device.query_unterminated()
                    return b"", self._check(session, StatusCode.error_timeout)
            if state.serial:
                data, status = super().read(session, count)
            else:
                data, status = self._take(session, device, count)
            device.status.update()
        return data, status

    def _take(self, session: Any, device: SimDevice, count: int) -> tuple[bytes, StatusCode]:
        """viRead of what the current output message holds, in one step rather than pyvisa-sim's byte loop.

        The same rules (VPP-4.3, 6.1): the read ends at the message's END, else at the
        termination character when it is enabled, else at ``count`` bytes; END wins a tie,
        then the termination character.
        """
        attrs = self.sessions[session].attrs
        if attrs.get(_SUPPRESS_END):
            data, status = super().read(session, count)
            return bytes(data), status
        message = device._output_buffers[0]
        end = len(message)
        status = StatusCode.success
        if attrs.get(_TERMCHAR_ENABLED):
            at = message.find(attrs.get(_TERMCHAR, 0x0A))
            if 0 <= at < end - 1:
                end, status = at + 1, StatusCode.success_termination_character_read
        if count < end:
            end, status = count, StatusCode.success_max_count_read
        if end == len(message):
            device._output_buffers.popleft()
            return bytes(message), status
        data = bytes(message[:end])
        del message[:end]
        return data, status

    def read_stb(self, session: Any) -> tuple[int, StatusCode]:
        state = self._events.get(session)
        if state is None:
            return 0, self._check(session, StatusCode.error_invalid_object)
        device = state.device
        protocol = self.sessions[session].get_attribute
        kind = read_stb_kind(state.interface, lambda: protocol(constants.ResourceAttribute.io_prot)[0])
        with device.cond:
            code = self._io_status(session, device, supported=device.serial_poll and kind is not None)
            if code < 0:
                return 0, self._check(session, code)
            device.select(state.channel)
            stb = device.serial_poll_byte() if kind == "serial_poll" else device.status.stb_query()
        return stb, self._check(session, StatusCode.success)

    def clear(self, session: Any) -> StatusCode:
        return self._device_call(session, SimDevice.device_clear)

    def assert_trigger(self, session: Any, protocol: constants.TriggerProtocol) -> StatusCode:
        return self._device_call(session, SimDevice.trigger)

    # -- locks ---------------------------------------------------------------

    def lock(
        self, session: Any, lock_type: constants.Lock, timeout: int, requested_key: str | None = None
    ) -> tuple[str, StatusCode]:
        if session not in self._events:
            return "", self._check(session, StatusCode.error_invalid_object)
        key, status = self._acquire(session, lock_type, timeout, requested_key)
        return key, self._check(session, status)

    def unlock(self, session: Any) -> StatusCode:
        state = self._events.get(session)
        if state is None:
            return self._check(session, StatusCode.error_invalid_object)
        status = state.device.locks.release(session)
        if status == StatusCode.success:
            self._sync_host(state, WAIT.start(None))
        return self._check(session, status)

    def _acquire(
        self, session: Any, lock_type: constants.Lock, timeout: int, requested_key: str | None
    ) -> tuple[str, StatusCode]:
        """viLock in this process (:class:`ResourceLocks`), then on the host, within one timeout."""
        state = self._events[session]
        poll = WAIT.start(timeout_seconds(timeout))
        key, status = state.device.locks.acquire(session, lock_type, timeout, requested_key)
        if status < 0 or self._sync_host(state, poll):
            return key, status
        state.device.locks.release(session)  # another process holds it: give back what we took here
        self._sync_host(state, WAIT.start(None))
        return "", StatusCode.error_resource_locked if timeout_seconds(timeout) == 0 else StatusCode.error_timeout

    def _sync_host(self, state: _SessionEvents, poll: Any) -> bool:
        """Make this library's OS lock on the resource what its sessions hold; False if ``poll`` ran out."""
        host = self._host_lock(state.resource)
        return host is None or host.reconcile(state.device.locks.host_mode, poll)

    def _host_lock(self, resource: str) -> HostLock | None:
        with self._hosts_mutex:
            if resource not in self._hosts:
                self._hosts[resource] = host_lock(self._realpath, resource)
            return self._hosts[resource]

    def _lock_state(self, state: _SessionEvents) -> constants.AccessModes:
        mode = state.device.locks.host_mode()
        if mode is None:
            host = self._host_lock(state.resource)
            mode = None if host is None else host.others()
        if mode is None:
            return constants.AccessModes.no_lock
        return constants.AccessModes.exclusive_lock if mode[0] == "exclusive" else constants.AccessModes.shared_lock

    # -- service request events -------------------------------------------------

    def enable_event(
        self, session: Any, event_type: EventType, mechanism: Mechanism, context: None = None
    ) -> StatusCode:
        state = self._event_state(session, event_type)
        if not state.device.service_requests:  # the file's switch: a backend without SRQ events
            return self._check(session, StatusCode.error_nonsupported_operation)
        with state.device.cond:
            if mechanism == Mechanism.queue:
                already, state.queue_enabled = state.queue_enabled, True
            elif mechanism == Mechanism.handler:
                if not state.handlers:
                    return self._check(session, StatusCode.error_handler_not_installed)
                already, state.handler_enabled = state.handler_enabled, True
            else:
                return self._check(session, StatusCode.error_invalid_mechanism)
        return self._check(session, StatusCode.success_event_already_enabled if already else StatusCode.success)

    def disable_event(self, session: Any, event_type: EventType, mechanism: Mechanism) -> StatusCode:
        state = self._event_state(session, event_type, EventType.all_enabled)
        with state.device.cond:
            was = state.queue_enabled or state.handler_enabled
            if mechanism & Mechanism.queue:
                state.queue_enabled = False
            if mechanism & Mechanism.handler:
                state.handler_enabled = False
            state.device.cond.notify_all()  # wakes wait_on_event, which then reports "not enabled"
        return self._check(session, StatusCode.success if was else StatusCode.success_event_already_disabled)

    def discard_events(self, session: Any, event_type: EventType, mechanism: Mechanism) -> StatusCode:
        state = self._event_state(session, event_type, EventType.all_enabled)
        with state.device.cond:
            empty = not state.queue
            if mechanism & Mechanism.queue:
                state.queue.clear()
        return self._check(session, StatusCode.success_queue_already_empty if empty else StatusCode.success)

    def wait_on_event(self, session: Any, in_event_type: EventType, timeout: int) -> tuple[EventType, Any, StatusCode]:
        state = self._event_state(session, in_event_type, EventType.all_enabled)
        with state.device.cond:
            if not state.queue_enabled and not state.queue:
                return in_event_type, None, self._check(session, StatusCode.error_not_enabled)
            state.device.cond.wait_for(lambda: bool(state.queue) or not state.queue_enabled, timeout_seconds(timeout))
            if not state.queue:
                code = StatusCode.error_timeout if state.queue_enabled else StatusCode.error_not_enabled
                return in_event_type, None, self._check(session, code)
            event_type = state.queue.popleft()
        context = self._register(EventContext(event_type))
        return event_type, context, self._check(session, StatusCode.success)

    def install_handler(
        self, session: Any, event_type: EventType, handler: Any, user_handle: Any
    ) -> tuple[Any, Any, Any, StatusCode]:
        state = self._event_state(session, event_type)
        with state.device.cond:
            state.handlers.append((handler, user_handle))
        return handler, user_handle, handler, self._check(session, StatusCode.success)

    def uninstall_handler(
        self, session: Any, event_type: EventType, handler: Any, user_handle: Any = None
    ) -> StatusCode:
        state = self._event_state(session, event_type)
        with state.device.cond:
            for entry in state.handlers:
                if entry[0] == handler and entry[1] is user_handle:
                    state.handlers.remove(entry)
                    break
            else:
                return self._check(session, StatusCode.error_invalid_handler_reference)
            if not state.handlers:
                state.handler_enabled = False
        return self._check(session, StatusCode.success)

    def _service_request(self, device: SimDevice) -> None:
        """The device asserted SRQ (called under its condition): queue it or call handlers."""
        for session, state in list(self._events.items()):
            if state.device is not device:
                continue
            if state.queue_enabled:
                state.queue.append(SRQ)
            if state.handler_enabled:
                for handler, user_handle in list(state.handlers):
                    threading.Thread(
                        target=self._call_handler, args=(session, handler, user_handle), daemon=True
                    ).start()
        device.cond.notify_all()

    def _call_handler(self, session: Any, handler: Any, user_handle: Any) -> None:
        context = self._register(EventContext(SRQ))
        try:
            handler(session, SRQ, context, user_handle)
        except Exception:  # a handler's failure must not kill the simulator
            log.exception("service request handler %r failed", handler)
        finally:
            self.sessions.pop(context, None)

    # -- helpers ---------------------------------------------------------------

    def _timeout_s(self, session: Any) -> float | None:
        timeout, _ = self.sessions[session].get_attribute(constants.ResourceAttribute.timeout_value)
        return timeout_seconds(timeout)

    def _check(self, session: Any, code: StatusCode) -> StatusCode:
        """pyvisa's convention: record the status, raise ``VisaIOError`` if it is an error."""
        if code is StatusCode.success:  # the common case, without handle_return_value's enum lookup
            self._last_status = code
            self._last_status_in_session[session] = code
            return code
        status: StatusCode = self.handle_return_value(session, code)
        return status

    def _event_state(self, session: Any, event_type: EventType, *also: EventType) -> _SessionEvents:
        """The session's event state; ``VisaIOError`` for a bad session or an event type it cannot have."""
        state = self._events.get(session)
        if state is None:
            self._check(session, StatusCode.error_invalid_object)
        assert state is not None
        if event_type not in also and (event_type != SRQ or state.interface not in SRQ_INTERFACES):
            self._check(session, StatusCode.error_invalid_event)
        return state

    def _device_of(self, session: Any) -> SimDevice | None:
        state = self._events.get(session)
        return None if state is None else state.device

    def _io_status(self, session: Any, device: SimDevice, *, supported: bool = True) -> StatusCode:
        if device.hooked and device.faults.disconnected:
            return StatusCode.error_connection_lost
        if not supported:
            return StatusCode.error_nonsupported_operation
        if not device.locks.allows(session):
            return StatusCode.error_resource_locked
        return StatusCode.success

    def _device_call(self, session: Any, action: Any) -> StatusCode:
        device = self._device_of(session)
        if device is None:
            return self._check(session, StatusCode.error_invalid_object)
        with device.cond:
            code = self._io_status(session, device)
            if code == StatusCode.success:
                action(device)
        return self._check(session, code)


_REGISTRY_LOCK = threading.Lock()
#: The current library of each simulation file (by realpath; "unset" is pyvisa-sim's default.yaml).
_CURRENT: dict[str, LitmusSimLibrary] = {}


def _realpath(simulation: str | Path) -> str:
    return "unset" if str(simulation) == "unset" else os.path.realpath(simulation)


def fresh_sim_library(simulation: str | Path) -> LitmusSimLibrary:
    """A simulator library on ``simulation`` with fresh device state, made the file's current one.

    The library is :class:`pytest_litmus.sim.LitmusSimLibrary` (pyvisa-sim plus
    VISA locks, the IEEE 488.2 status model and service requests), so mock and
    ``@sim`` stations both get locks and SRQ. Each pytest session and ``connect()``
    holder (through :func:`pytest_litmus.visa.open_resource_manager`) and each
    emulator start builds one; a later :func:`current_sim_library` (a plain
    ``pytest_litmus.sim.resource_manager(path)``) in the same process joins it.

    pyvisa caches libraries per (class, path) for the life of the process and
    hands out one resource manager per library; this builds outside that cache.
    """
    with _REGISTRY_LOCK:
        return _build_current(simulation)


def current_sim_library(simulation: str | Path) -> LitmusSimLibrary:
    """The current library of ``simulation`` in this process (built, and made current, if none)."""
    with _REGISTRY_LOCK:
        library = _CURRENT.get(_realpath(simulation))
        return library if library is not None else _build_current(simulation)


def _build_current(simulation: str | Path) -> LitmusSimLibrary:
    """A new library, made current (call with ``_REGISTRY_LOCK`` held)."""
    from pyvisa.highlevel import VisaLibraryBase
    from pyvisa.util import LibraryPath

    cls = LitmusSimLibrary
    key = (cls, LibraryPath(str(simulation), "user specified"))
    VisaLibraryBase._registry.pop(key, None)
    try:
        library = cls(str(simulation))
    finally:
        VisaLibraryBase._registry.pop(key, None)
    _CURRENT[_realpath(simulation)] = library
    return library
