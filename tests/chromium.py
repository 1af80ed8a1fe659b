"""Finding Chromium for the browser checks (the report, the station page).

Skipped where it is not installed (Debian: ``apt-get install chromium``), except under
``CI=true``, where a missing browser fails the test: CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The path of a Chromium to drive, or skip (fail under CI) the test."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is not installed, and CI must run the browser checks (.ci/run installs it)")
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the browser checks need it")
