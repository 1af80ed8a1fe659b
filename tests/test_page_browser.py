"""The station page as the operator uses it: headless Chromium driven by Playwright against ``litmus page``.

Each test serves a throw-away project holding the example station (runs on ``--mock``), types a serial,
presses Start and reads what the page shows. Skipped where Chromium is not installed (Debian:
``apt-get install chromium``), except under ``CI=true``, where a missing browser fails the test.
With ``LITMUS_PAGE_SCREENSHOTS=DIR`` the screenshots are kept in DIR (docs/img is made this way).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import chromium
from pagehelpers import example_project, make_project, page_server

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A run of the example suite on the simulator, as long as it may take on a loaded machine (ms).
RUN_MS = 120_000

FAILING = """
def test_rail_3v3(dmm, measure):
    measure("rail_3v3", dmm.measure_voltage(), units="V", low=3.2, high=3.4)
    measure("rail_3v3_tight", dmm.measure_voltage(), units="V", low=3.0, high=3.1)
"""

ASKING = """
def test_led(prompt, measure):
    answer = prompt("Is the LED green?", choices=["yes", "no"], timeout=120)
    measure("led_green", 1 if answer == "yes" else 0, low=1, high=1)
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(RUN_MS)
    yield opened
    context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    keep = os.environ.get("LITMUS_PAGE_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / name)
    return shot


def start(page: Any, serial: str) -> None:
    page.fill("#serial", serial)
    page.press("#serial", "Enter")  # a barcode scanner types the serial and presses Enter


def events(project: Path) -> list[dict[str, Any]]:
    (log,) = (project / "data" / "sessions").glob("*/events.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_passing_unit_shows_its_measurements_and_the_pass_banner(page: Any, tmp_path: Path) -> None:
    project = example_project(tmp_path / "project")
    with page_server(project) as (url, _):
        page.goto(url)
        page.wait_for_selector("#link.up")  # the stream is open; its first state message may still be on its way
        page.wait_for_selector("#station:text-is('cell-7')")
        page.wait_for_selector("#banner:text-is('READY')")

        start(page, "PB-1;rm")  # refused on the page: nothing runs
        page.wait_for_selector("#message:has-text('refused')")
        assert "dut_pattern" in page.text_content("#message")
        assert not (project / "data" / "sessions").exists()

        start(page, "PB-1042")
        page.wait_for_selector("#banner[data-outcome='passed']")
        names = page.eval_on_selector_all("#measurements tbody tr", "rows => rows.map(r => r.dataset.name)")
        assert {"supply_voltage", "rail_3v3", "input_current", "rail_3v3_triggered"} <= set(names)
        assert page.query_selector_all("#measurements tr.failed") == []
        assert page.text_content("#banner") == "PASS"
        assert page.text_content("#dut") == "unit PB-1042"
        page.wait_for_selector("#units td:has-text('PB-1042')")
        page.wait_for_selector("#yield:has-text('1 of 1 passed')")
        screenshot(page, "page-pass.png", tmp_path)
    assert events(project)[0]["dut"] == "PB-1042"


def test_a_failing_unit_shows_fail_and_the_failed_measurement(page: Any, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"test_rails.py": FAILING})
    with page_server(project) as (url, _):
        page.goto(url)
        page.wait_for_selector("#link.up")
        start(page, "PB-2001")
        page.wait_for_selector("#banner[data-outcome='failed']")
        assert page.text_content("#banner") == "FAIL"
        failed = page.query_selector_all("#measurements tr.failed")
        assert [row.get_attribute("data-name") for row in failed] == ["rail_3v3_tight"]
        assert "FAIL" in failed[0].text_content()
        assert "test_rail_3v3" in page.text_content("#failures")
        page.wait_for_selector("#yield:has-text('0 of 1 passed')")
        screenshot(page, "page-fail.png", tmp_path)


def test_a_prompt_is_answered_through_the_page(page: Any, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"test_led.py": ASKING})
    with page_server(project) as (url, _):
        page.goto(url)
        page.wait_for_selector("#link.up")
        start(page, "PB-3001")
        page.wait_for_selector("#prompt[open]")
        assert page.text_content("#prompt-text") == "Is the LED green?"
        screenshot(page, "page-prompt.png", tmp_path)
        page.click("#prompt-choices button:has-text('yes')")
        page.wait_for_selector("#banner[data-outcome='passed']")
        assert not page.is_visible("#prompt")
    answered = [e for e in events(project) if e["type"] == "PromptAnswered"]
    assert [(e["answer"], e["via"]) for e in answered] == [("yes", "page")]


def test_hostile_text_in_events_is_shown_as_text(page: Any, tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {
            "test_x.py": """
def test_x(measure):
    measure("<img src=x onerror=document.title='owned'>", 1.0, units="<b>V</b>", low=0, high=2)
"""
        },
    )
    with page_server(project) as (url, _):
        page.goto(url)
        page.wait_for_selector("#link.up")
        start(page, "PB-4001")
        page.wait_for_selector("#banner[data-outcome='passed']")
        cell = page.text_content("#measurements tbody tr td:nth-child(2)")
        assert cell == "<img src=x onerror=document.title='owned'>"
        assert page.query_selector("#measurements img") is None and page.query_selector("#measurements b") is None
        assert page.title() == "litmus cell-7"
