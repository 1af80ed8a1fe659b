"""Opening instruments and the proxy every instrument call goes through.

The proxy serialises calls per instrument with one re-entrant lock (PyVISA
sessions are not thread-safe: a write and its read must never interleave with
another thread's), times each public call, and records it as an
``InstrumentCall`` event. Wrapped methods are cached on the proxy, so after the
first call a method costs one lock, two clock reads and one line write.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from pytest_litmus.errors import StationConfigError
from pytest_litmus.visaname import resource_key

if TYPE_CHECKING:
    from pytest_litmus.config import InstrumentConfig, StationConfig
    from pytest_litmus.events import Recorder

#: Called before every instrument call, under the instrument lock; raises to refuse it
#: (a released role, a lock taken from under its holder).
Guard = Callable[[], None]

_MISSING = object()


def _origin(exc: BaseException) -> str:
    """`` at file:line`` of the user's code that raised ``exc`` ("" if it was not theirs: not found)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or tb.tb_frame.f_code.co_filename == __file__ or tb.tb_frame.f_code.co_filename.startswith("<"):
        return ""
    return f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


def load_driver(station: StationConfig, instrument: InstrumentConfig) -> type[Any]:
    """Import the role's driver class from its ``module:Class`` path.

    A module that is missing, or raises while it is imported, is a
    :class:`StationConfigError` naming the station file, the role's ``driver``
    key, and the exception with where it was raised.
    """
    key = f"instruments.{instrument.role}.driver"
    module_name, _, qualname = instrument.driver.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception as exc:  # an import-time error of the user's module: say whose and where
        raise StationConfigError(
            station.path,
            key,
            "an importable class",
            found=f"{instrument.driver!r}: {type(exc).__name__}: {exc}{_origin(exc)}",
        ) from None
    if not inspect.isclass(target):
        raise StationConfigError(station.path, key, "a class taking the opened pyvisa resource", instrument.driver)
    return target


def _simulated_name(rm: Any, station: StationConfig, instrument: InstrumentConfig, simulation: str) -> str:
    """The simulation file's spelling of the role's resource (compared canonically)."""
    wanted = resource_key(instrument.resource)
    for name in rm.list_resources("?*"):
        if resource_key(name) == wanted:
            return str(name)
    # pyvisa-sim "opens" an unknown resource as session 0 and fails only later.
    raise StationConfigError(
        simulation,
        "resources",
        f"an entry for {instrument.resource} (role {instrument.role!r} of station {station.id!r})",
        has_got=False,
    )


def _configure(resource: Any, station: StationConfig, instrument: InstrumentConfig) -> None:
    """Set the role's session attributes one by one, so a refused one names its key."""
    explicit = {
        "timeout": "timeout_ms",
        "read_termination": "read_termination",
        "write_termination": "write_termination",
    }
    for attribute, value in instrument.open_kwargs().items():
        field = explicit.get(attribute)
        key = field if field is not None and getattr(instrument, field) is not None else f"options.{attribute}"
        kind = type(resource).__name__
        try:
            getattr(resource, attribute)
        except AttributeError:  # pyvisa's own check: a typo must not become a plain Python attribute
            raise StationConfigError(
                station.path, f"instruments.{instrument.role}.{key}", f"an attribute of {kind}", attribute
            ) from None
        except Exception:  # present, but not readable now: pyvisa lets it pass too
            pass
        try:
            setattr(resource, attribute, value)
        except Exception as exc:
            raise StationConfigError(
                station.path,
                f"instruments.{instrument.role}.{key}",
                f"a value {kind} accepts ({type(exc).__name__}: {exc})",
                value,
            ) from None


def open_driver(
    rm: Any, station: StationConfig, instrument: InstrumentConfig, *, simulation: str | None = None
) -> tuple[Any, Any]:
    """Open the role's VISA resource on ``rm`` and wrap it in its driver: ``(driver, resource)``.

    The opened pyvisa resource is returned beside the driver, so locks and
    service requests never depend on where a driver keeps it. ``simulation``
    names the simulation file when ``rm`` is simulated, so a resource the file
    lacks is reported against it.
    """
    driver_class = load_driver(station, instrument)
    name = instrument.resource
    if simulation is not None:
        name = _simulated_name(rm, station, instrument, simulation)
    where = f" (simulation file {simulation})" if simulation else ""
    label = f"role {instrument.role!r} of station {station.id!r} ({station.path})"
    try:
        resource = rm.open_resource(name)
    except Exception as exc:
        exc.add_note(f"opening {label} at {instrument.resource}{where}")
        raise
    try:
        _configure(resource, station, instrument)
        return driver_class(resource), resource
    except Exception as exc:
        if not isinstance(exc, StationConfigError):
            exc.add_note(f"in driver {instrument.driver} of {label}, created on {instrument.resource}{where}")
        resource.close()
        raise


class _State:
    __slots__ = ("accessors", "driver", "guard", "lock", "recorder", "resource", "role", "session")

    def __init__(
        self, driver: Any, role: str, resource: str, recorder: Recorder, guard: Guard | None, session: Any = None
    ) -> None:
        self.driver = driver
        self.role = role
        self.resource = resource
        #: The pyvisa resource the station opened for this driver (None if unknown).
        self.session = session
        self.recorder = recorder
        self.lock = threading.RLock()
        self.guard = guard
        #: Recorded wrappers of property reads (``name``) and writes (``name=``), made once each.
        self.accessors: dict[str, Callable[..., Any]] = {}


class InstrumentProxy:
    """Stands in for a driver: same methods, serialised per instrument, recorded.

    Public methods are wrapped; properties are read and set under the lock and
    recorded (a set as ``name=``); other attributes pass through. Attributes
    starting with ``_`` pass through unwrapped.
    """

    def __init__(
        self,
        driver: Any,
        *,
        role: str,
        resource: str,
        recorder: Recorder,
        guard: Guard | None = None,
        session: Any = None,
    ) -> None:
        object.__setattr__(self, "_litmus", _State(driver, role, resource, recorder, guard, session))

    def __getattr__(self, name: str) -> Any:
        state: _State = object.__getattribute__(self, "_litmus")
        if name.startswith("_"):
            return getattr(state.driver, name)
        static = inspect.getattr_static(type(state.driver), name, _MISSING)
        if isinstance(static, property):
            return _accessor(state, name, lambda: getattr(state.driver, name))()
        value = getattr(state.driver, name)
        if not callable(value):
            return value
        wrapper = _wrap(state, name, value)
        object.__setattr__(self, name, wrapper)
        return wrapper

    def __setattr__(self, name: str, value: Any) -> None:
        state: _State = object.__getattribute__(self, "_litmus")
        _accessor(state, f"{name}=", lambda new: setattr(state.driver, name, new))(value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(object.__getattribute__(self, "_litmus").driver)) | {"lock_context"})

    @contextlib.contextmanager
    def lock_context(self, timeout: float | None = None) -> Iterator[InstrumentProxy]:
        """Keep the instrument this caller's for the block: no other thread's call runs in between.

        PyVISA's name for the same idea: use it for a ``write`` and its ``read``.
        ``timeout`` in seconds (None: as long as it takes) raises ``TimeoutError``
        while another thread keeps the instrument. Calls inside still record.
        """
        state: _State = object.__getattribute__(self, "_litmus")
        if not state.lock.acquire(timeout=-1 if timeout is None else max(float(timeout), 0.0)):
            raise TimeoutError(
                f"instrument {state.role!r} ({state.resource}) still in use by another thread after {timeout} s"
            )
        try:
            yield self
        finally:
            state.lock.release()

    def __repr__(self) -> str:
        state: _State = object.__getattribute__(self, "_litmus")
        return f"<InstrumentProxy {state.role} {state.resource} {type(state.driver).__name__}>"


def proxy_state(proxy: InstrumentProxy) -> _State:
    """The proxy's internals: driver, role, resource, session, recorder, lock, guard (for the library's own use)."""
    state: _State = object.__getattribute__(proxy, "_litmus")
    return state


def _accessor(state: _State, key: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The recorded wrapper for a property read or write, made on first use."""
    wrapper = state.accessors.get(key)
    if wrapper is None:
        wrapper = state.accessors[key] = _wrap(state, key, func)
    return wrapper


def _wrap(state: _State, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    from pytest_litmus.events import call_head

    lock = state.lock
    record = state.recorder.instrument_call
    role = state.role
    head = call_head(role, name)

    acquire, release = lock.acquire, lock.release  # cheaper than "with lock" on this path

    def call(*args: Any, **kwargs: Any) -> Any:
        acquire()
        try:
            guard = state.guard
            if guard is not None:
                guard()
            start = perf_counter_ns()
            try:
                result = method(*args, **kwargs)
            except Exception as exc:
                record(role, name, head, args, kwargs, None, f"{type(exc).__name__}: {exc}", perf_counter_ns() - start)
                raise
            record(role, name, head, args, kwargs, result, None, perf_counter_ns() - start)
            return result
        finally:
            release()

    call.__name__ = name
    call.__doc__ = getattr(method, "__doc__", None)
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call
