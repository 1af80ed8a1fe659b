"""The litmus hook manager: who receives events, and isolation of subscribers.

pytest only reads hook implementations named ``pytest_*``, so ``litmus_event``
in a conftest would be invisible to pytest's own manager. Litmus keeps a pluggy
manager of its own that takes unmarked ``litmus_*`` functions (as pytest does
for ``pytest_*``); inside pytest every registered plugin and conftest is
bridged onto it, outside pytest ``connect()`` loads the ``litmus`` entry-point
group.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

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


class SubscriberWarning(UserWarning):
    """A ``litmus_event`` subscriber raised; the run goes on without it for that event."""


class LitmusPluginManager(pluggy.PluginManager):
    """A pluggy manager for ``litmus_*`` hooks that accepts unmarked implementations."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        #: Bumped on every (un)registration, so hot paths can cache who subscribes.
        self.generation = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        self.generation += 1
        return super().register(plugin, name)

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

    def defines_hooks(self, plugin: Any) -> bool:
        """Whether ``plugin`` has any ``litmus_*`` implementation to register."""
        try:
            names = dir(plugin)
        except Exception:
            return False
        return any(name.startswith("litmus_") and self.parse_hookimpl_opts(plugin, name) for name in names)

    def dispatch(self, event: dict[str, Any], skip: object = None) -> None:
        """Call every ``litmus_event`` implementation in hook order, each in isolation.

        A subscriber that raises becomes a :class:`SubscriberWarning`; the
        others still receive the event. ``skip`` is a plugin already served.
        """
        for impl in reversed(self.hook.litmus_event.get_hookimpls()):
            if impl.plugin is skip:
                continue
            try:
                impl.function(event=event) if "event" in impl.argnames else impl.function()
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                warnings.warn(
                    SubscriberWarning(
                        f"litmus_event subscriber {impl.plugin_name!r} raised {type(exc).__name__}: {exc} "
                        f"(event seq {event.get('seq')}, type {event.get('type')})"
                    ),
                    stacklevel=2,
                )

    def subscribers(self) -> list[object]:
        """The plugins implementing ``litmus_event``, in call order."""
        return [impl.plugin for impl in reversed(self.hook.litmus_event.get_hookimpls())]


def bridge_pytest_plugin(manager: LitmusPluginManager) -> Callable[..., None]:
    """A ``pytest_plugin_registered`` implementation that mirrors plugins onto ``manager``."""

    def pytest_plugin_registered(plugin: Any, plugin_name: str) -> None:
        if plugin is None or manager.is_registered(plugin) or not manager.defines_hooks(plugin):
            return
        name = plugin_name if manager.get_plugin(plugin_name) is None else None
        manager.register(plugin, name=name)

    return pytest_plugin_registered
