"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright with
the system browser (no browser download)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import APIResponse, Page, Route, expect, sync_playwright

from tripstream.settings import Settings
from tripstream.stack.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(dashboard: str) -> Iterator[Page]:
    """A fresh browser page, closed before the dashboard stops: its open event stream
    would otherwise hold the server's graceful shutdown."""
    assert Path(CHROMIUM).exists(), "install Chromium: apt-get install chromium (.ci/run does)"
    profile = tempfile.mkdtemp(prefix="tripstream-chromium-")
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, viewport={"width": 1280, "height": 1600}
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_a_dropped_file_appears_and_fills_its_progress_bar_without_a_reload(
    page: Page,
    dashboard: str,
    cluster_settings: Settings,
    db: Any,
    sample_csv: Path,
    producer_thread: Any,
    streaming_job: Any,
    tmp_path: Path,
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    producer_thread(cluster_settings)
    streaming_job().wait_started()
    page.goto(dashboard)
    expect(page.locator("#connection")).to_have_text("live", timeout=30_000)
    # data is text, never markup: a hostile name arrives through the same push channel
    hostile = "<img src=x onerror=alert(1)>"
    db.execute(
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, error)"
        " VALUES (1, 'x', %s, 1, 'rejected', %s)",
        (hostile, "<b>bad</b> header"),
    )
    expect(page.locator("#files td.name", has_text=hostile)).to_have_count(1, timeout=30_000)
    assert page.locator("#files img").count() == 0 and page.locator("#files b").count() == 0

    shutil.copy(sample_csv, cluster_settings.paths.inbox / "trips.csv")
    row = page.locator("#files tr", has=page.locator("td.name", has_text="trips.csv"))
    expect(row).to_have_count(1, timeout=60_000)
    expect(row.locator(".pct")).to_have_text("100%", timeout=120_000)
    expect(row.locator("td.state")).to_have_text("committed")
    expect(page.locator("#t-rows")).to_have_text("100")
    expect(page.locator("#latest")).to_contain_text("pt_search_app", timeout=30_000)
    page.fill("#datasource", "cheap_mobile")
    page.click("#regions-form button")
    expect(page.locator("#regions")).to_have_text("Hamburg, Prague, Turin")
    page.fill("#region", "Prague")
    page.click("#weekly-form button")
    expect(page.locator("#weekly")).to_contain_text("weekly_average")
    page.fill("#region", "")
    page.fill("#bbox", "14,50,13,49")
    page.click("#weekly-form button")
    expect(page.locator("#weekly-error")).to_contain_text("MIN_LON <= MAX_LON")
    expect(page.locator("#similar tbody tr")).to_have_count(10)
    expect(page.locator("#cells-chart .scatterlayer .point")).not_to_have_count(0)  # drawn
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert dialogs == []  # no script from the data ever ran


def test_a_change_pushed_while_the_snapshot_is_in_flight_is_not_undone_by_it(
    page: Page, dashboard: str, db: Any
) -> None:
    """The page's snapshot is read before a file arrives and answered after the file's push:
    the file stays on the page."""
    held: list[tuple[Route, APIResponse]] = []
    page.route("**/api/files*", lambda route: held.append((route, route.fetch())))
    page.goto(dashboard)
    expect(page.locator("#connection")).to_have_text("live", timeout=30_000)
    while not held:  # the snapshot was read, from an empty table; its answer is held back
        page.wait_for_timeout(50)
    db.execute(
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state)"
        " VALUES (7, 'x', 'late.csv', 1, 'seen')"
    )
    expect(page.locator("#files td.name", has_text="late.csv")).to_have_count(1, timeout=30_000)
    assert page.get_attribute("body", "data-db") != "up"  # the snapshot is still held
    route, stale = held.pop()
    route.fulfill(response=stale)
    expect(page.locator("body")).to_have_attribute("data-db", "up", timeout=30_000)
    expect(page.locator("#files td.name", has_text="late.csv")).to_have_count(1)


def test_the_page_says_when_the_database_is_down_and_recovers_by_itself(
    page: Page, dashboard: str, db: Any, postgres: EmbeddedPostgres
) -> None:
    page.goto(dashboard)
    expect(page.locator("body")).to_have_attribute("data-db", "up", timeout=30_000)
    postgres.stop("immediate")
    try:
        expect(page.locator("#db-down")).to_be_visible(timeout=60_000)
        expect(page.locator("#db-error")).not_to_be_empty()
    finally:
        postgres.start()
    expect(page.locator("#db-down")).to_be_hidden(timeout=60_000)
    expect(page.locator("body")).to_have_attribute("data-db", "up")
