"""Open a page in headless Chromium through Playwright and report what a reader's browser saw."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Where Debian's package puts the browser; CNNLAB_CHROMIUM names another.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    """Return the system Chromium's path, or skip the test saying how to get one."""
    named = os.environ.get("CNNLAB_CHROMIUM")
    found = named if named and Path(named).is_file() else next((p for p in map(shutil.which, CANDIDATES) if p), None)
    if found is None:
        pytest.skip("no Chromium on this machine: install Debian's chromium package (.ci/run does when it is missing)")
    return found


@dataclass
class Seen:
    """What the browser saw: console errors, failed requests, section ids, images, text."""

    console_errors: list[str]
    failed_requests: list[str]
    requests: list[str]
    section_ids: list[str]
    images: list[dict]
    text: str


def open_page(page_path: Path, screenshot: Path) -> Seen:
    """Load `page_path` from disk in headless Chromium, take a full-page screenshot, return what it saw."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make setup")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            failed: list[str] = []
            requests: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            ids = page.eval_on_selector_all("section[id]", "nodes => nodes.map(n => n.id)")
            images = page.eval_on_selector_all(
                "img", "nodes => nodes.map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))")
            text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Seen(errors, failed, requests, ids, images, text)
