"""The litmus hook manager: who receives events, and isolation of subscribers.

pytest only reads hook implementations named ``pytest_*``, so ``litmus_event``
in a conftest would be invisible to pytest's own manager. Litmus keeps a pluggy
manager of its own that takes unmarked ``litmus_*`` functions (as pytest does
for ``pytest_*``); inside pytest every registered plugin and conftest is
bridged onto it, and both inside and outside pytest the ``litmus`` entry-point
group is loaded (a plugin that is also a pytest plugin is registered once).

Hooks are called through pluggy (``hooks.hook.litmus_event(event=...)``), so
``tryfirst``/``trylast`` and wrappers are pluggy's. Isolation is added at
registration: each ``litmus_event`` implementation's function is wrapped so an
exception it raises becomes a :class:`SubscriberWarning` and the call goes on
to the other subscribers; a wrapper's own code is isolated the same way, and
the call it wraps still happens.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Generator
from typing import Any, cast

import pluggy

from pytest_litmus import hookspecs

_IMPL_DEFAULTS: dict[str, Any] = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}
#: Hooks whose implementations are isolated from each other (subscribers, not deciders).
ISOLATED_HOOKS = frozenset({"litmus_event"})


class SubscriberWarning(UserWarning):
    """A ``litmus_event`` subscriber raised; the run goes on without it for that event."""


def _warn(impl: pluggy.HookImpl, hook: str, exc: BaseException, args: tuple[Any, ...]) -> None:
    event = args[0] if args and isinstance(args[0], dict) else {}
    warnings.warn(
        SubscriberWarning(
            f"{hook} subscriber {impl.plugin_name!r} raised {type(exc).__name__}: {exc} "
            f"(event seq {event.get('seq')}, type {event.get('type')})"
        ),
        stacklevel=3,
    )


def _isolate(impl: pluggy.HookImpl, hook: str) -> None:
    """Wrap ``impl``'s function so that its exceptions become warnings.

    pluggy calls ``impl.function(*args)`` with the arguments in ``impl.argnames``
    order (computed from the original function, which is kept), so the guard
    forwards them unchanged. pluggy has no public way to wrap an implementation;
    ``function`` is a plain slot of :class:`pluggy.HookImpl`.
    """
    function = impl.function
    if impl.wrapper or impl.hookwrapper:

        def guarded_wrapper(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
            started = cast("Generator[Any, Any, Any]", function(*args, **kwargs))
            teardown: Generator[Any, Any, Any] | None = started
            try:
                next(started)  # the wrapper's code before its ``yield``
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                _warn(impl, hook, exc, args)
                teardown = None
            try:
                sent = yield  # the wrapped call: pluggy runs the other implementations
            except BaseException:  # not a subscriber's (those are isolated): KeyboardInterrupt and the like
                if teardown is not None:
                    teardown.close()
                raise
            if teardown is None:
                return sent
            try:
                teardown.send(sent)
            except StopIteration as stop:
                return stop.value if impl.wrapper else None
            except Exception as exc:  # noqa: BLE001
                _warn(impl, hook, exc, args)
                return sent if impl.wrapper else None
            teardown.close()
            _warn(impl, hook, RuntimeError("the wrapper yielded more than once"), args)
            return sent if impl.wrapper else None

        setattr(impl, "function", guarded_wrapper)  # noqa: B010 - HookImpl.function is typed Final
        return

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            _warn(impl, hook, exc, args)
            return None

    setattr(impl, "function", guarded)  # noqa: B010


class LitmusPluginManager(pluggy.PluginManager):
    """A pluggy manager for ``litmus_*`` hooks that accepts unmarked implementations."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        #: Bumped on every (un)registration, so hot paths can cache who subscribes.
        self.generation = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        self.generation += 1
        plugin_name = super().register(plugin, name)
        if plugin_name is not None:
            for hook in ISOLATED_HOOKS:
                for impl in getattr(self.hook, hook).get_hookimpls():
                    if impl.plugin is plugin:
                        _isolate(impl, hook)
        return plugin_name

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        self.generation += 1
        return super().unregister(plugin, name)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if not name.startswith("litmus_"):
            return None
        try:
            attr = inspect.getattr_static(plugin, name)
        except AttributeError:
            return None
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if not inspect.isfunction(attr):
            return None
        marked = getattr(attr, "litmus_impl", None) or getattr(attr, "pytest_impl", None) or {}
        return {**_IMPL_DEFAULTS, **marked}

    def load_setuptools_entrypoints(
        self, group: str, name: str | None = None, *, blocked: Callable[[str], bool] | None = None
    ) -> int:
        """Load the ``group`` entry points, skipping a plugin object that is already registered.

        Under pytest a plugin may be both a ``pytest11`` and a ``litmus`` entry
        point; the bridge may have registered it first, under its pytest name.
        ``blocked(name)`` true skips an entry point (pytest's ``-p no:NAME``).
        """
        import importlib.metadata

        count = 0
        for dist in list(importlib.metadata.distributions()):
            for ep in dist.entry_points:
                if ep.group != group or (name is not None and ep.name != name):
                    continue
                if self.has_plugin(ep.name) or self.is_blocked(ep.name) or (blocked is not None and blocked(ep.name)):
                    continue
                plugin = ep.load()
                if self.is_registered(plugin):
                    continue
                self.register(plugin, name=ep.name)
                count += 1
        return count

    def defines_hooks(self, plugin: Any) -> bool:
        """Whether ``plugin`` has any ``litmus_*`` implementation to register."""
        try:
            names = dir(plugin)
        except Exception:
            return False
        return any(name.startswith("litmus_") and self.parse_hookimpl_opts(plugin, name) for name in names)

    def subscribers(self) -> list[object]:
        """The plugins implementing ``litmus_event``, in call order."""
        return [impl.plugin for impl in reversed(self.hook.litmus_event.get_hookimpls())]


class PytestBridge:
    """A pytest plugin that mirrors every plugin pytest registers onto ``manager``."""

    def __init__(self, manager: LitmusPluginManager) -> None:
        self.manager = manager

    def pytest_plugin_registered(self, plugin: Any, plugin_name: str) -> None:
        manager = self.manager
        if plugin is None or manager.is_registered(plugin) or not manager.defines_hooks(plugin):
            return
        name = plugin_name if manager.get_plugin(plugin_name) is None else None
        manager.register(plugin, name=name)
