"""Repository-wide test setup: no LITMUS_* setting leaks in from the developer's shell."""

from __future__ import annotations

import pytest

_ENV = ("LITMUS_STATION", "LITMUS_HOME", "LITMUS_MOCK", "LITMUS_LOCK_TIMEOUT", "LITMUS_SERVER", "PYVISA_LIBRARY")


@pytest.fixture(autouse=True)
def _isolated_litmus_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
